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
  /**
   * The name of the configured remote server in use, if any.
   */
  remote?: string | null;
  /**
   * The names of the remote servers the server's configuration offers.
   */
  remotes?: string[];
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
   * The name of a remote server the server's configuration offers; `''` switches back to
   * the local agent.
   */
  remote?: string;
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

/**
 * A value a prompt template's user fills in.
 */
export interface IPromptField {
  /**
   * The placeholder's name in the template's form.
   */
  name: string;
  /**
   * What to call it in a form.
   */
  label: string;
  /**
   * `text`, or a sequence written one character per token (`smiles`, `amino`, `dna`).
   */
  kind: string;
  /**
   * Whether the template needs it.
   */
  required: boolean;
  /**
   * An example value (may be empty).
   */
  example: string;
}

/**
 * One template of the science prompt library (`GET /galactica/prompts`).
 */
export interface IPromptTemplate {
  name: string;
  title: string;
  description: string;
  /**
   * The full prompt form, `{field}` placeholders in it.
   */
  form: string;
  fields: IPromptField[];
  /**
   * Where the form and its decoding come from (galai, the paper).
   */
  source: string;
  max_tokens: number;
  /**
   * What the result holds: text, list, molecule, table, sequence or equation.
   */
  result: string;
}

/**
 * The prompt library as the server lists it.
 */
export interface IPromptCatalog {
  templates: IPromptTemplate[];
  /**
   * Whether the server checks and draws molecules (RDKit installed).
   */
  rdkit: boolean;
  /**
   * The sentence that GALACTICA can make things up.
   */
  notice: string;
}

/**
 * The body of `POST /galactica/prompts/<name>`: the edited filled template (or the fields).
 */
export interface IPromptRunRequest {
  prompt?: string;
  values?: Record<string, string>;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
}

/**
 * RDKit's check of a SMILES (`valid` is null when RDKit is missing; `error` says why).
 */
export interface ISmilesCheck {
  valid: boolean | null;
  canonical?: string;
  formula?: string;
  error: string | null;
}

/**
 * The result of a template run: `text` always, the rest as the template's parser gives.
 */
export interface IPromptResult {
  text: string;
  truncated: boolean;
  template?: string;
  items?: string[];
  references?: string[];
  name?: string | null;
  properties?: Record<string, string>;
  smiles?: string;
  check?: ISmilesCheck;
  sequence?: string;
  latex?: string | null;
}

/**
 * The answer of `GET /galactica/molecule`.
 */
export interface IMoleculeDrawing {
  smiles: string;
  check: ISmilesCheck;
  /**
   * The 2D structure as SVG, or null (the check's error says why).
   */
  svg: string | null;
}

/**
 * The body of `POST /galactica/cite`: citations grounded in the document's library.
 */
export interface ILibraryCiteRequest {
  text: string;
  /**
   * The notebook or file, relative to the Jupyter root: its library is found from there.
   */
  path?: string;
  /**
   * Rank the library's entries (default); false: free suggestions checked against it.
   */
  grounded?: boolean;
  n?: number;
}

/**
 * A citation suggested by `POST /galactica/cite`: a library entry, or a free one marked
 * unverified.
 */
export interface ILibrarySuggestion {
  key: string | null;
  title: string;
  author: string | null;
  year: string | null;
  doi?: string | null;
  url?: string | null;
  /**
   * As GALACTICA writes it: `Title, Author`.
   */
  text: string;
  source: 'library' | 'model';
  verified: boolean;
  /**
   * What to insert: `[@key]`, or `[Title, Surname]{.unverified}`.
   */
  insert: string;
  /**
   * A search for an unverified work.
   */
  search?: string;
}

/**
 * Where the library came from and what went wrong reading it.
 */
export interface ILibraryInfo {
  origin: string;
  sources: string[];
  size: number;
  problems: {
    source: string;
    line: number | null;
    key: string | null;
    message: string;
  }[];
}

/**
 * The answer of `POST /galactica/cite`.
 */
export interface ILibraryCiteResult {
  suggestions: ILibrarySuggestion[];
  truncated: boolean;
  /**
   * The library used, or null when none was found.
   */
  library: ILibraryInfo | null;
  /**
   * Whether GALACTICA chose among the library's entries.
   */
  grounded: boolean;
}
