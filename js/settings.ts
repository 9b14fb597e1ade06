/**
 * The extension's settings (schema/plugin.json), typed, with their defaults.
 */
import { CitationFormat } from './references';

/**
 * Inline completion settings.
 */
export interface IInlineSettings {
  /**
   * In markdown cells of notebooks.
   */
  markdownCells: boolean;
  /**
   * In markdown files.
   */
  markdownFiles: boolean;
  /**
   * In code cells (comments and docstrings only).
   */
  codeCells: boolean;
  /**
   * Most new tokens of a suggestion.
   */
  maxTokens: number;
  /**
   * How much text before the cursor is sent (characters).
   */
  contextChars: number;
  /**
   * A suggestion still generating after this long is stopped (ms; 0: never).
   */
  timeoutMs: number;
}

/**
 * All settings of the extension.
 */
export interface IGalacticaSettings {
  /**
   * The model the sidebar loads by default.
   */
  model: string;
  /**
   * A remote OpenAI-compatible server the sidebar offers by default.
   */
  remoteUrl: string;
  /**
   * Most new tokens of a sidebar task or notebook command.
   */
  maxTokens: number;
  /**
   * Sampling temperature for free text.
   */
  temperature: number;
  /**
   * How many references Cite suggests.
   */
  citationCount: number;
  /**
   * How a chosen reference is written at the cursor.
   */
  citationFormat: CitationFormat;
  /**
   * The heading of the References cell.
   */
  referencesHeading: string;
  /**
   * Inline completion.
   */
  inlineCompletion: IInlineSettings;
}

/**
 * The defaults, as in the schema.
 */
export const DEFAULT_SETTINGS: IGalacticaSettings = {
  model: '',
  remoteUrl: '',
  maxTokens: 128,
  temperature: 0,
  citationCount: 3,
  citationFormat: 'numbered',
  referencesHeading: 'References',
  inlineCompletion: {
    markdownCells: true,
    markdownFiles: true,
    codeCells: false,
    maxTokens: 32,
    contextChars: 4000,
    timeoutMs: 20000
  }
};

/**
 * Settings from a settings registry's composite value, defaults filled in.
 */
export function readSettings(
  composite: Partial<Record<keyof IGalacticaSettings, unknown>> | null
): IGalacticaSettings {
  const raw = (composite ?? {}) as Partial<IGalacticaSettings>;
  return {
    ...DEFAULT_SETTINGS,
    ...raw,
    inlineCompletion: {
      ...DEFAULT_SETTINGS.inlineCompletion,
      ...(raw.inlineCompletion ?? {})
    }
  };
}
