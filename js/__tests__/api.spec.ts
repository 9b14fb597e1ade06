import { ServerConnection } from '@jupyterlab/services';

import { isAbortError, parseEventStream } from '../api';
import { GalacticaService } from '../service';

describe('parseEventStream', () => {
  it('splits complete events and keeps the rest', () => {
    const { events, rest } = parseEventStream(
      'event: token\ndata: {"text": "a"}\n\nevent: result\ndata: {"x": 1}\n\nevent: tok'
    );
    expect(events).toEqual([
      { event: 'token', data: '{"text": "a"}' },
      { event: 'result', data: '{"x": 1}' }
    ]);
    expect(rest).toBe('event: tok');
  });

  it('joins data lines, skips comments and handles CRLF', () => {
    const { events, rest } = parseEventStream(
      ': keep-alive\r\n\r\ndata: one\r\ndata: two\r\n\r\n'
    );
    expect(events).toEqual([{ event: 'message', data: 'one\ntwo' }]);
    expect(rest).toBe('');
  });
});

describe('GalacticaService', () => {
  it('starts no generation after the user unloaded the model', async () => {
    const service = new GalacticaService(
      ServerConnection.makeSettings({ baseUrl: 'http://127.0.0.1:9/' })
    );
    service.status.dispose();
    service.status.unloadedByUser = true;
    try {
      await expect(
        service.runPrompt('wiki', { prompt: '# A' })
      ).rejects.toThrow('you unloaded it');
      await expect(
        service.cite({ text: 'x', path: 'nb.ipynb' })
      ).rejects.toThrow('you unloaded it');
      await expect(service.run('equation', { text: 'x' })).rejects.toThrow(
        'you unloaded it'
      );
    } finally {
      service.status.unloadedByUser = false;
    }
  });
});

describe('isAbortError', () => {
  it("knows an aborted fetch's error by its name, from any realm", () => {
    expect(isAbortError(new DOMException('stopped', 'AbortError'))).toBe(true);
    expect(isAbortError({ name: 'AbortError', message: 'stopped' })).toBe(true);
    expect(isAbortError(new TypeError('Failed to fetch'))).toBe(false);
    expect(isAbortError(null)).toBe(false);
    expect(isAbortError('AbortError')).toBe(false);
  });
});
