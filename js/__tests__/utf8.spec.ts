/**
 * A task's stream split anywhere, even inside a multi-byte UTF-8 character, decodes to the
 * text the server sent: no U+FFFD that the server did not send.
 */
import { ServerConnection } from '@jupyterlab/services';

import { runTask } from '../api';

const TEXT = 'Schrödinger’s 量子 ψ 😀';

/** The server's event stream for a `complete` task streaming `TEXT` in two tokens. */
function eventStream(): Uint8Array {
  const events = [
    `event: token\ndata: ${JSON.stringify({ text: TEXT.slice(0, 8), index: 0 })}\n\n`,
    `event: token\ndata: ${JSON.stringify({ text: TEXT.slice(8), index: 0 })}\n\n`,
    `event: result\ndata: ${JSON.stringify({ text: TEXT, truncated: false })}\n\n`
  ];
  // sent raw (not \u-escaped), as a server writing UTF-8 JSON would
  return new TextEncoder().encode(events.join(''));
}

/** Server settings whose fetch answers with `bytes` in chunks of `size` bytes. */
function settingsServing(bytes: Uint8Array, size: number) {
  const fetch = async (): Promise<Response> => {
    let at = 0;
    // a stream's reader, handing out `size` bytes at a time
    const reader = {
      read: async (): Promise<{ done: boolean; value?: Uint8Array }> => {
        if (at >= bytes.length) {
          return { done: true };
        }
        const value = bytes.slice(at, at + size);
        at += size;
        return { done: false, value };
      },
      releaseLock: () => undefined
    };
    const body = { getReader: () => reader };
    // what runTask reads of a fetch Response (jsdom has no streaming Response)
    return {
      ok: true,
      status: 200,
      statusText: 'OK',
      body
    } as unknown as Response;
  };
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/',
    fetch: fetch as unknown as typeof window.fetch
  });
}

describe('runTask over a stream split inside characters', () => {
  const bytes = eventStream();
  it.each([1, 2, 3, 5, 7])('decodes chunks of %i bytes', async size => {
    const tokens: string[] = [];
    const result = await runTask(
      'complete',
      { text: 'x' },
      { onToken: text => tokens.push(text) },
      settingsServing(bytes, size)
    );
    expect(tokens.join('')).toBe(TEXT);
    expect(result.text).toBe(TEXT);
    expect(tokens.join('')).not.toContain('\ufffd');
  });
});
