/**
 * Shared types of the GALACTICA extension: the server's API contract.
 */

/**
 * The state of the model behind the server extension.
 */
export type ModelState =
  'stopped' | 'starting' | 'loading' | 'ready' | 'failed';

/**
 * The GALACTICA tasks the server runs.
 */
export type TaskName =
  'cite' | 'equation' | 'summarise' | 'complete' | 'ask' | 'work';

/**
 * Progress of a model download or load.
 */
export interface ILoadProgress {
  /**
   * What is happening, e.g. `download` or `load`.
   */
  phase: string;
  /**
   * Fraction done, 0 to 1.
   */
  fraction: number;
}

/**
 * The document of `GET /galactica/status`.
 */
export interface IModelStatus {
  /**
   * Where the model is in its life cycle.
   */
  state: ModelState;
  /**
   * The resolved model: a hub id or a local directory.
   */
  model: string;
  /**
   * The device the model runs on, once loaded.
   */
  device: string | null;
  /**
   * The weights' dtype, once loaded.
   */
  dtype: string | null;
  /**
   * Memory the weights take, once loaded.
   */
  memory_bytes: number | null;
  /**
   * Load progress while starting or loading.
   */
  progress: ILoadProgress | null;
  /**
   * Why the model failed, when `state` is `failed`.
   */
  error: string | null;
  /**
   * A local agent or a remote OpenAI-compatible server.
   */
  backend: 'local' | 'remote';
  /**
   * The remote server's URL, if any.
   */
  url: string | null;
}

/**
 * The body of `POST /galactica/model`.
 */
export interface ILoadModelRequest {
  /**
   * A size (`125m` ... `120b`), a hub id or a local directory.
   */
  model?: string;
  /**
   * An OpenAI-compatible server to use instead of a local agent; `''` switches back.
   */
  url?: string;
  /**
   * Weights dtype (`auto`, `float32`, `bfloat16`, `float16`).
   */
  dtype?: string;
  /**
   * Device (`auto`, `cpu`, `cuda`).
   */
  device?: string;
  /**
   * Quantized loading (`8bit`, `4bit`).
   */
  quantize?: string;
}

/**
 * The body of `POST /galactica/tasks/<task>`.
 */
export interface ITaskRequest {
  /**
   * The text to work on.
   */
  text: string;
  /**
   * Most new tokens to generate.
   */
  max_tokens?: number;
  /**
   * Sampling temperature (0 is greedy).
   */
  temperature?: number;
  /**
   * Nucleus sampling threshold.
   */
  top_p?: number;
  /**
   * Number of suggestions (citations).
   */
  n?: number;
  /**
   * Random seed.
   */
  seed?: number;
}

/**
 * One reference suggested by the `cite` task.
 */
export interface IReferenceSuggestion {
  /**
   * The raw suggestion, `Title, First author`.
   */
  text: string;
  /**
   * The title part.
   */
  title: string;
  /**
   * The first author, when the model gave one.
   */
  author: string | null;
}

/**
 * The result of the `cite` task.
 */
export interface ICiteResult {
  suggestions: IReferenceSuggestion[];
  truncated: boolean;
}

/**
 * The result of the `equation` task.
 */
export interface IEquationResult {
  latex: string;
  truncated: boolean;
}

/**
 * The result of the text tasks (summarise, complete, ask, work).
 */
export interface ITextResult {
  text: string;
  truncated: boolean;
}

/**
 * Result type of each task.
 */
export interface ITaskResults {
  cite: ICiteResult;
  equation: IEquationResult;
  summarise: ITextResult;
  complete: ITextResult;
  ask: ITextResult;
  work: ITextResult;
}

/**
 * A task's result tagged with the task's name: switch on `task` to read it.
 */
export type TaskResult<K extends TaskName = TaskName> = {
  [T in K]: { task: T } & ITaskResults[T];
}[K];
