/**
 * A queue that one producer fills and one async iterator drains.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  /**
   * Add a value.
   */
  push(value: T): void {
    if (this._closed) {
      return;
    }
    const waiter = this._waiters.shift();
    if (waiter) {
      waiter({ value, done: false });
    } else {
      this._values.push(value);
    }
  }

  /**
   * No more values will come.
   */
  close(): void {
    this._closed = true;
    for (const waiter of this._waiters.splice(0)) {
      waiter({ value: undefined, done: true });
    }
  }

  /**
   * Whether the queue was closed.
   */
  get closed(): boolean {
    return this._closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this._values.length > 0) {
          return Promise.resolve({ value: this._values.shift()!, done: false });
        }
        if (this._closed) {
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise(resolve => this._waiters.push(resolve));
      }
    };
  }

  private _closed = false;
  private _values: T[] = [];
  private _waiters: ((result: IteratorResult<T>) => void)[] = [];
}
