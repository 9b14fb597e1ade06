import { parseEventStream } from '../api';

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
