/**
 * The links of a node of `dlock up` on the group protocol: one
 * MessageChannel to every other node's thread, made by the main thread
 * (cluster.ts) for each pair of runs and handed to both ends with the
 * member id of the run at the other end. Each carries the codec's frames
 * as a TCP link between hosts does (transport-port.ts); nothing else
 * crosses it.
 *
 * A frame for a member with no link now is dropped: the protocol sends
 * again (group-host.ts). A link whose peer's thread ends closes, and is
 * forgotten; a restarted peer is a new member id with a new link.
 *
 * Threading: the node's thread.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Frame } from '../../codec/frame.js';
import type { GroupLinks } from '../../replication/group-host.js';
import { PortTransport } from '../../transport/transport-port.js';

export class PortLinks implements GroupLinks {
  /** Frames for this node, with the member they came from and how late a forward arrived (link-delay.ts). */
  deliver: (from: string, f: Frame, lateMs: number) => void = () => undefined;
  private readonly byId = new Map<string, PortTransport>();
  private closing = false;

  /** Link to member `id` through `port` (its other end is in that member's thread). */
  add(id: string, port: MessagePort): void {
    if (this.closing) {
      port.close();
      return;
    }
    this.byId.get(id)?.close();
    const t = new PortTransport(port);
    this.byId.set(id, t);
    t.onFrames((frames) => {
      for (const f of frames) this.deliver(id, f, f.type === 'forward' && f.t !== undefined ? t.delay.lateness(f.t) : 0);
    });
    t.onClose(() => {
      if (this.byId.get(id) === t) this.byId.delete(id);
    });
  }

  send(to: string, frame: Frame): void {
    this.byId.get(to)?.send(frame);
  }

  close(): void {
    this.closing = true;
    for (const t of this.byId.values()) t.close();
    this.byId.clear();
  }
}
