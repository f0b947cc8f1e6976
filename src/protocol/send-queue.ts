/**
 * zeromq.js allows one send in progress per socket; this serialises sends through a bounded
 * queue. `push` resolves when the message was handed to the socket (or rejects with its error).
 */
export class SendQueue<M> {
  private readonly waiting: Array<{ message: M; done: (err?: Error) => void }> = [];
  private pumping = false;

  constructor(private readonly sendOne: (message: M) => Promise<void>, readonly depthMax: number) {}

  get depth(): number {
    return this.waiting.length;
  }

  push(message: M): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ message, done: (err) => (err ? reject(err) : resolve()) });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let item = this.waiting.shift(); item; item = this.waiting.shift()) {
        try {
          await this.sendOne(item.message);
          item.done();
        } catch (err) {
          item.done(err as Error);
        }
      }
    } finally {
      this.pumping = false;
    }
  }
}
