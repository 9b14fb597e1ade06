/**
 * Calls to the server extension under `{baseUrl}/galactica/`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ILoadModelRequest,
  IModelStatus,
  ITaskRequest,
  ITaskResults,
  TaskName
} from './tokens';

/**
 * The server extension's API namespace.
 */
export const API_NAMESPACE = 'galactica';

/**
 * The URL of an endpoint of the server extension.
 */
export function apiUrl(
  endPoint: string,
  settings: ServerConnection.ISettings
): string {
  return URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
}

/**
 * Call the server extension and return its JSON answer.
 *
 * @param endPoint API end point, relative to `galactica/`
 * @param init Initial values for the request
 * @param settings The server settings to use for the request
 * @returns The response body interpreted as JSON
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      apiUrl(endPoint, settings),
      init,
      settings
    );
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let data: any = await response.text();
  if (data.length > 0) {
    try {
      data = JSON.parse(data);
    } catch {
      console.warn('galactica-ext: not a JSON response body.', response);
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? data);
  }
  return data as T;
}

/**
 * The model's status.
 */
export function getStatus(
  settings?: ServerConnection.ISettings
): Promise<IModelStatus> {
  return requestAPI<IModelStatus>('status', {}, settings);
}

/**
 * Load (or switch to) a model; the answer comes before the load ends.
 */
export function loadModel(
  request: ILoadModelRequest,
  settings?: ServerConnection.ISettings
): Promise<IModelStatus> {
  return requestAPI<IModelStatus>(
    'model',
    { method: 'POST', body: JSON.stringify(request) },
    settings
  );
}

/**
 * Unload the model (stop the local agent).
 */
export function unloadModel(
  settings?: ServerConnection.ISettings
): Promise<IModelStatus> {
  return requestAPI<IModelStatus>('model', { method: 'DELETE' }, settings);
}

/**
 * Callbacks of a streamed task.
 */
export interface IStreamCallbacks {
  /**
   * Called with each new piece of generated text of suggestion `index`.
   */
  onToken?: (text: string, index: number) => void;
  /**
   * Called with the model status while the server waits for the model to load.
   */
  onStatus?: (status: IModelStatus) => void;
  /**
   * Abort the generation (the server stops the model too).
   */
  signal?: AbortSignal;
}

/**
 * An error reported by the server inside a task stream, or before it.
 */
export class TaskError extends Error {
  constructor(
    message: string,
    readonly status?: number
  ) {
    super(message);
    this.name = 'TaskError';
  }
}

/**
 * One server-sent event.
 */
export interface IServerSentEvent {
  /**
   * The event name (`message` when the server gave none).
   */
  event: string;
  /**
   * The data lines, joined by newlines.
   */
  data: string;
}

/**
 * Split a growing `text/event-stream` buffer into complete events.
 *
 * @returns the events found and the unconsumed rest of the buffer
 */
export function parseEventStream(buffer: string): {
  events: IServerSentEvent[];
  rest: string;
} {
  const events: IServerSentEvent[] = [];
  const normalized = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalized.split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') {
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) {
        value = value.slice(1);
      }
      if (field === 'event') {
        event = value;
      } else if (field === 'data') {
        data.push(value);
      }
    }
    if (data.length > 0 || event !== 'message') {
      events.push({ event, data: data.join('\n') });
    }
  }
  return { events, rest };
}

/**
 * Run a task on the server, streaming its tokens, and return its parsed result.
 *
 * Aborting `callbacks.signal` closes the connection, which cancels the generation.
 */
export async function runTask<K extends TaskName>(
  task: K,
  request: ITaskRequest,
  callbacks: IStreamCallbacks = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<ITaskResults[K]> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      apiUrl(`tasks/${task}`, settings),
      {
        method: 'POST',
        body: JSON.stringify(request),
        headers: { Accept: 'text/event-stream' },
        signal: callbacks.signal
      },
      settings
    );
  } catch (error) {
    if ((error as Error)?.name === 'AbortError') {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  if (!response.ok || !response.body) {
    let message = response.statusText;
    try {
      message = (await response.json()).message ?? message;
    } catch {
      // keep the status text
    }
    throw new TaskError(message, response.status);
  }

  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let result: ITaskResults[K] | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      const parsed = parseEventStream(buffer);
      buffer = parsed.rest;
      for (const { event, data } of parsed.events) {
        if (event === 'token') {
          const token = JSON.parse(data);
          callbacks.onToken?.(
            token.text as string,
            (token.index as number) ?? 0
          );
        } else if (event === 'status') {
          callbacks.onStatus?.(JSON.parse(data) as IModelStatus);
        } else if (event === 'result') {
          result = JSON.parse(data) as ITaskResults[K];
        } else if (event === 'error') {
          throw new TaskError(JSON.parse(data).message as string);
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
  if (result === undefined) {
    throw new TaskError('the server closed the stream without a result');
  }
  return result;
}
