/**
 * Calls to the server extension under `{baseUrl}/galactica/`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ILibraryCiteRequest,
  ILibraryCiteResult,
  ILoadModelRequest,
  IModelStatus,
  IMoleculeDrawing,
  IPromptCatalog,
  IPromptResult,
  IPromptRunRequest,
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
 * Whether something thrown is an aborted request's error (fetch's DOMException, from any
 * realm).
 */
export function isAbortError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    'name' in error &&
    error.name === 'AbortError'
  );
}

/**
 * Send a request to the server extension: an aborted request rejects with its AbortError
 * (a stop, not a failure), a request that cannot be sent with a NetworkError.
 */
async function send(
  endPoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<Response> {
  try {
    return await ServerConnection.makeRequest(
      apiUrl(endPoint, settings),
      init,
      settings
    );
  } catch (error) {
    if (isAbortError(error)) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }
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
  const response = await send(endPoint, init, settings);
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
export function runTask<K extends TaskName>(
  task: K,
  request: ITaskRequest,
  callbacks: IStreamCallbacks = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<ITaskResults[K]> {
  return streamTask<ITaskResults[K]>(
    `tasks/${task}`,
    request,
    callbacks,
    settings
  );
}

/**
 * Run a template of the prompt library, streamed as a task is.
 */
export function runPrompt(
  name: string,
  request: IPromptRunRequest,
  callbacks: IStreamCallbacks = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<IPromptResult> {
  return streamTask<IPromptResult>(
    `prompts/${encodeURIComponent(name)}`,
    request,
    callbacks,
    settings
  );
}

/**
 * The prompt library's templates.
 */
export function getPrompts(
  settings?: ServerConnection.ISettings
): Promise<IPromptCatalog> {
  return requestAPI<IPromptCatalog>('prompts', {}, settings);
}

/**
 * A template filled with the user's values, as the user sees and edits it before running.
 */
export async function fillPrompt(
  name: string,
  values: Record<string, string>,
  settings?: ServerConnection.ISettings
): Promise<string> {
  const answer = await requestAPI<{ prompt: string }>(
    `prompts/${encodeURIComponent(name)}/fill`,
    { method: 'POST', body: JSON.stringify({ values }) },
    settings
  );
  return answer.prompt;
}

/**
 * RDKit's check of a SMILES and its 2D drawing.
 */
export function drawMolecule(
  smiles: string,
  settings?: ServerConnection.ISettings
): Promise<IMoleculeDrawing> {
  return requestAPI<IMoleculeDrawing>(
    `molecule?smiles=${encodeURIComponent(smiles)}`,
    {},
    settings
  );
}

/**
 * Citations grounded in the document's library (or free ones checked against it).
 */
export function citeFromLibrary(
  request: ILibraryCiteRequest,
  signal?: AbortSignal,
  settings?: ServerConnection.ISettings
): Promise<ILibraryCiteResult> {
  return requestAPI<ILibraryCiteResult>(
    'cite',
    { method: 'POST', body: JSON.stringify(request), signal },
    settings
  );
}

/**
 * POST to a streaming endpoint, pass its `token` and `status` events on, and return its
 * `result` (an `error` event, or a stream without a result, is a {@link TaskError}).
 */
export async function streamTask<T>(
  endPoint: string,
  body: unknown,
  callbacks: IStreamCallbacks = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const response = await send(
    endPoint,
    {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { Accept: 'text/event-stream' },
      signal: callbacks.signal
    },
    settings
  );
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
  let result: T | undefined;
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
          result = JSON.parse(data) as T;
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
