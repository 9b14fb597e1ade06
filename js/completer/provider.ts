/**
 * GALACTICA's inline completion provider: ghost text while writing.
 *
 * Prose is continued in markdown cells and files; after `[START_REF]` or `[@` the
 * suggestions are references (several, to cycle through with Alt+[ and Alt+]); inside
 * `$$...$$`, `\[...\]` or `$...$` they are LaTeX; in code cells (when enabled) comments and
 * docstrings are continued to the end of the line. Text streams in as it is generated; a
 * request superseded by further typing is aborted, which cancels it on the server.
 */
import {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { JSONValue } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { EditorKind, editorKind, textAbove } from '../editor';
import { galacticaIcon } from '../icons';
import { IGalactica } from '../service';
import { DEFAULT_SETTINGS, IInlineSettings } from '../settings';
import { ITaskRequest, ITaskResults, TaskName } from '../tokens';
import { checkModel } from '../progress';
import { requestAPI } from '../api';
import { GhostHints, ISuggestionHint } from './hints';
import { AsyncQueue } from './stream';
import {
  AT_TRIGGER,
  cutAtStops,
  detectTrigger,
  ITrigger,
  suffixAllowsCompletion,
  tailContext
} from './triggers';

/**
 * The provider's identifier (its settings live under this key in the Inline Completer
 * settings).
 */
export const PROVIDER_ID = 'galactica-ext:inline';

const EMPTY: IInlineCompletionList = { items: [] };

/**
 * The provider's settings in the Inline Completer settings (JupyterLab owns them: it
 * switches the provider on and off, debounces typing and bounds `fetch` by `timeout`).
 */
export interface IProviderSettings {
  enabled: boolean;
  /**
   * Pause after the last keystroke before an automatic request (ms).
   */
  debouncerDelay: number;
  /**
   * How long JupyterLab waits for `fetch` (ms).
   */
  timeout: number;
  autoFillInMiddle: boolean;
}

/**
 * The defaults of {@link IProviderSettings} this provider contributes.
 */
export const PROVIDER_DEFAULTS: IProviderSettings = {
  enabled: true,
  debouncerDelay: 300,
  timeout: DEFAULT_SETTINGS.inlineCompletion.timeoutMs,
  autoFillInMiddle: true
};

/**
 * How long a notebook found without a library is not asked again (ms).
 */
const NO_LIBRARY_TTL = 30000;

/**
 * One suggestion of `POST /galactica/cite`.
 */
interface ICiteSuggestion {
  key: string | null;
  title: string;
  author: string | null;
  year?: string | number | null;
  text: string;
  verified?: boolean;
}

/**
 * The answer of `POST /galactica/cite`.
 */
interface ICiteAnswer {
  suggestions: ICiteSuggestion[];
  grounded: boolean;
  library: { size: number } | null;
}

/**
 * The hint of a free suggestion: not from the user's library.
 */
const UNVERIFIED: ISuggestionHint = {
  text: 'unverified: suggested by GALACTICA, not from your library; check that it exists',
  verified: false
};

/**
 * A library entry in one line: title, first author, year.
 */
export function describeEntry(entry: {
  title: string;
  author: string | null;
  year?: string | number | null;
}): string {
  const who = [entry.author, entry.year].filter(Boolean).join(', ');
  return who ? `${entry.title} (${who})` : entry.title;
}

/**
 * Whether inline completion is on for this kind of editor.
 */
export function enabledFor(
  kind: EditorKind | null,
  settings: IInlineSettings
): boolean {
  if (kind === null) {
    return false;
  }
  switch (kind) {
    case 'markdown-cell':
      return settings.markdownCells;
    case 'markdown-file':
      return settings.markdownFiles;
    case 'code-cell':
      return settings.codeCells;
    default:
      return false;
  }
}

/**
 * Make a suggestion fit what was typed: no doubled space after a typed one, no space
 * after `[@`, and the closing marker when the editor does not hold one already.
 */
export function finishSuggestion(
  raw: string,
  trigger: ITrigger,
  typedSpace: boolean,
  closer: string
): string {
  let text = cutAtStops(raw, trigger.stops).text;
  if (
    typedSpace ||
    (trigger.opener === AT_TRIGGER && trigger.prompt.endsWith('[START_REF]'))
  ) {
    text = text.replace(/^[ \t]+/, '');
  }
  if (trigger.kind === 'reference') {
    text = text.replace(/\s+$/, '');
    return text ? text + closer : '';
  }
  return text;
}

/**
 * The GALACTICA inline completion provider.
 */
export class GalacticaInlineProvider implements IInlineCompletionProvider {
  /**
   * Create a provider over the GALACTICA service.
   *
   * @param _galactica the GALACTICA service
   * @param _editorKind tells what kind of editor a widget holds (replaceable in tests)
   */
  constructor(
    private readonly _galactica: IGalactica,
    private readonly _editorKind: (
      widget: Widget | null
    ) => EditorKind | null = editorKind
  ) {
    _galactica.unloadStarted.connect(this._dropAll, this);
  }

  readonly identifier = PROVIDER_ID;
  readonly name = 'GALACTICA';
  readonly icon = galacticaIcon;
  /**
   * Defaults of the Inline Completer's per-provider settings, where the user switches
   * GALACTICA's ghost text on and off and sets its debounce; suggestions may come before
   * auto-closed brackets (the provider checks what follows the cursor itself). The cell
   * types, context and generation limits are GALACTICA's own settings.
   */
  readonly schema: ISettingRegistry.IProperty = {
    default: { ...PROVIDER_DEFAULTS }
  };

  /**
   * The provider's current Inline Completer settings.
   */
  get providerSettings(): Readonly<IProviderSettings> {
    return this._providerSettings;
  }

  /**
   * Receive the provider's Inline Completer settings (on load and on every change).
   */
  configure(settings: { [property: string]: JSONValue }): void {
    this._providerSettings = {
      ...PROVIDER_DEFAULTS,
      ...(settings as Partial<IProviderSettings>)
    };
  }

  /**
   * Suggest completions for the cursor position.
   */
  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList> {
    const settings = this._galactica.settings.inlineCompletion;
    const kind = this._editorKind(context.widget);
    const automatic =
      context.triggerKind === InlineCompletionTriggerKind.Automatic;
    if (!enabledFor(kind, settings) && automatic) {
      return EMPTY;
    }
    const before = request.text.slice(0, request.offset);
    const after = request.text.slice(request.offset);
    if (automatic && (!before.trim() || !suffixAllowsCompletion(after))) {
      return EMPTY;
    }
    let full = before;
    if (kind === 'markdown-cell' && context.widget instanceof NotebookPanel) {
      const above = textAbove(context.widget, settings.contextChars);
      full = above ? `${above}\n\n${before}` : before;
    }
    const trigger = detectTrigger(tailContext(full, settings.contextChars), {
      code: kind === 'code-cell' || kind === 'file'
    });
    if (trigger.kind === 'none') {
      return EMPTY;
    }
    if (this._galactica.unloading) {
      return EMPTY; // the user is unloading the model: nothing new starts
    }
    if (!this._galactica.status.ready) {
      if (automatic) {
        // no ghost text without a model (the status bar says why)
        return EMPTY;
      }
      if (!checkModel(this._galactica)) {
        return EMPTY; // unloaded on purpose: a notification offers to load it
      }
    }

    // a newer request supersedes this one (JupyterLab has already debounced it): abort
    // the previous generation at once
    this._controller?.abort();
    this._controller = null;
    const generation = ++this._generation;
    const controller = new AbortController();
    this._controller = controller;

    // GALACTICA's tokens carry their leading space: send the prompt without a trailing
    // one and drop the space from the suggestion when the user typed it
    const prompt = trigger.prompt.replace(/[ \t]+$/, '');
    const typedSpace = prompt.length < trigger.prompt.length;
    const closer =
      trigger.closer && !after.trimStart().startsWith(trigger.closer)
        ? trigger.closer
        : '';
    const adjusted = { ...trigger, prompt };
    if (
      trigger.kind === 'reference' &&
      trigger.opener === AT_TRIGGER &&
      context.widget instanceof NotebookPanel
    ) {
      const grounded = await this._grounded(
        tailContext(full, settings.contextChars),
        context.widget.context.path,
        closer,
        controller
      );
      if (grounded) {
        return grounded;
      }
    }
    if (trigger.kind === 'reference') {
      return this._references(
        adjusted,
        typedSpace,
        closer,
        controller,
        generation
      );
    }
    return this._continue(
      adjusted,
      typedSpace,
      settings,
      controller,
      generation
    );
  }

  /**
   * Stream the suggestion started by {@link fetch}.
   */
  async *stream(
    token: string
  ): AsyncGenerator<{ response: IInlineCompletionItem }, undefined, unknown> {
    const queue = this._streams.get(token);
    if (!queue) {
      return;
    }
    try {
      for await (const response of queue) {
        yield { response };
      }
    } finally {
      this._streams.delete(token);
    }
  }

  /**
   * Reference suggestions: the greedy one streamed at once (as fast as prose), then the
   * alternatives by beam search, each in a slot of its own that fills when they are known.
   */
  private _references(
    trigger: ITrigger,
    typedSpace: boolean,
    closer: string,
    controller: AbortController,
    generation: number
  ): IInlineCompletionList {
    const count = Math.max(1, this._galactica.settings.citationCount);
    const slots = Array.from({ length: count }, (_, i) => {
      const token = `${PROVIDER_ID}:${generation}:${i}`;
      const queue = new AsyncQueue<IInlineCompletionItem>();
      this._streams.set(token, queue);
      return { token, queue };
    });
    const hints = new Map<string, ISuggestionHint>();
    const finish = (slot: number, insertText: string, error?: string) => {
      const { token, queue } = slots[slot];
      if (insertText && !queue.closed) {
        hints.set(insertText, UNVERIFIED);
        this._hints.describe(hints);
      }
      if (!queue.closed) {
        queue.push({
          insertText,
          isIncomplete: false,
          token,
          ...(error ? { error: { message: error } } : {})
        });
        queue.close();
      }
    };
    const finishAll = (from: number) => {
      for (let i = from; i < count; i++) {
        finish(i, '');
      }
    };
    let raw = '';
    const first = slots[0];
    void (async () => {
      let best = '';
      try {
        const result = await this._run(
          'cite',
          { text: trigger.prompt, n: 1 },
          controller,
          (text, index) => {
            if (index !== 0 || first.queue.closed) {
              return;
            }
            raw += text;
            const stopped = cutAtStops(raw, trigger.stops).stopped;
            first.queue.push({
              insertText: finishSuggestion(
                raw,
                trigger,
                typedSpace,
                stopped ? closer : ''
              ),
              isIncomplete: true,
              token: first.token
            });
          }
        );
        const text =
          raw ||
          (result.suggestions[0] ? ' ' + result.suggestions[0].text : '');
        best = finishSuggestion(text, trigger, typedSpace, closer);
        finish(0, best);
      } catch (error) {
        const aborted = (error as Error)?.name === 'AbortError';
        finish(
          0,
          aborted ? finishSuggestion(raw, trigger, typedSpace, '') : '',
          aborted ? undefined : ((error as Error)?.message ?? String(error))
        );
        finishAll(1);
        this._release(controller);
        return;
      }
      if (count === 1) {
        this._release(controller);
        return;
      }
      // the alternatives: beam search, one more beam than slots to replace a duplicate
      try {
        const result = await this._run(
          'cite',
          { text: trigger.prompt, n: Math.min(count + 1, 8) },
          controller
        );
        const seen = new Set([best]);
        let slot = 1;
        for (const suggestion of result.suggestions) {
          const text = finishSuggestion(
            (typedSpace ? '' : ' ') + suggestion.text,
            trigger,
            typedSpace,
            closer
          );
          if (slot < count && text && !seen.has(text)) {
            seen.add(text);
            finish(slot++, text);
          }
        }
      } catch {
        // no alternatives (stopped, or the model failed): the first suggestion stands
      } finally {
        finishAll(1);
        this._release(controller);
      }
    })();
    return {
      items: slots.map(({ token }) => ({
        insertText: '',
        isIncomplete: true,
        token
      }))
    };
  }

  /**
   * Library keys for an open `[@`: GALACTICA ranks the entries of the notebook's library
   * (`POST /galactica/cite`, grounded), the keys that start with what was typed; each
   * entry's title is shown under the ghost text. `null` when the notebook has no library
   * (then the suggestions are free, and marked unverified).
   */
  private async _grounded(
    text: string,
    path: string,
    closer: string,
    controller: AbortController
  ): Promise<IInlineCompletionList | null> {
    const known = this._noLibrary.get(path);
    if (known !== undefined && Date.now() - known < NO_LIBRARY_TTL) {
      return null;
    }
    const typed = text.slice(text.lastIndexOf(AT_TRIGGER) + AT_TRIGGER.length);
    let answer: ICiteAnswer;
    try {
      answer = await requestAPI<ICiteAnswer>('cite', {
        method: 'POST',
        body: JSON.stringify({
          text,
          path,
          grounded: true,
          n: Math.max(1, this._galactica.settings.citationCount)
        }),
        signal: controller.signal
      });
    } catch (error) {
      if ((error as Error)?.name === 'AbortError') {
        this._release(controller);
        return EMPTY;
      }
      return null; // no grounded cite here (an older server): free suggestions
    }
    if (!answer.library || answer.library.size === 0 || !answer.grounded) {
      this._noLibrary.set(path, Date.now());
      return null;
    }
    const hints = new Map<string, ISuggestionHint>();
    const items: IInlineCompletionItem[] = [];
    for (const suggestion of answer.suggestions) {
      const key = suggestion.key ?? '';
      if (!key.startsWith(typed) || !suggestion.verified) {
        continue;
      }
      const insertText = key.slice(typed.length) + closer;
      if (insertText && !hints.has(insertText)) {
        hints.set(insertText, {
          text: describeEntry(suggestion),
          verified: true
        });
        items.push({ insertText });
      }
    }
    this._hints.describe(hints);
    this._release(controller);
    return { items };
  }

  /**
   * Run a task, aborted by `controller` or after the inline completion timeout.
   */
  private _run<K extends TaskName>(
    task: K,
    request: ITaskRequest,
    controller: AbortController,
    onToken?: (text: string, index: number) => void
  ): Promise<ITaskResults[K]> {
    const timeout = this._galactica.settings.inlineCompletion.timeoutMs;
    const timer =
      timeout > 0 ? setTimeout(() => controller.abort(), timeout) : null;
    return this._galactica
      .run(task, request, { signal: controller.signal, onToken })
      .finally(() => {
        if (timer !== null) {
          clearTimeout(timer);
        }
      });
  }

  /**
   * The user started unloading the model: stop the generation in flight and empty the
   * suggestions still streaming (none may appear once the model is going).
   */
  private _dropAll(): void {
    this._controller?.abort();
    this._controller = null;
    for (const [token, queue] of this._streams) {
      if (!queue.closed) {
        queue.push({ insertText: '', isIncomplete: false, token });
        queue.close();
      }
    }
  }

  private _release(controller: AbortController): void {
    if (this._controller === controller) {
      this._controller = null;
    }
  }

  /**
   * Prose, LaTeX or a comment: one suggestion, streamed.
   */
  private _continue(
    trigger: ITrigger,
    typedSpace: boolean,
    settings: IInlineSettings,
    controller: AbortController,
    generation: number
  ): IInlineCompletionList {
    const token = `${PROVIDER_ID}:${generation}`;
    const queue = new AsyncQueue<IInlineCompletionItem>();
    this._streams.set(token, queue);
    let raw = '';
    const finish = (item: IInlineCompletionItem) => {
      if (!queue.closed) {
        queue.push(item);
        queue.close();
      }
    };
    this._run(
      'complete',
      {
        text: trigger.prompt,
        max_tokens: settings.maxTokens,
        temperature: this._galactica.settings.temperature
      },
      controller,
      (text, index) => {
        if (index !== 0 || queue.closed) {
          return;
        }
        raw += text;
        const insertText = finishSuggestion(raw, trigger, typedSpace, '');
        if (cutAtStops(raw, trigger.stops).stopped) {
          // the suggestion is complete: stop the model now
          finish({ insertText, isIncomplete: false, token });
          controller.abort();
        } else {
          queue.push({ insertText, isIncomplete: true, token });
        }
      }
    )
      .then(() =>
        finish({
          insertText: finishSuggestion(raw, trigger, typedSpace, ''),
          isIncomplete: false,
          token
        })
      )
      .catch(error => {
        if ((error as Error).name === 'AbortError') {
          finish({
            insertText: finishSuggestion(raw, trigger, typedSpace, ''),
            isIncomplete: false,
            token
          });
        } else {
          finish({
            insertText: '',
            isIncomplete: false,
            token,
            error: { message: (error as Error).message ?? String(error) }
          });
        }
      })
      .finally(() => {
        if (this._controller === controller) {
          this._controller = null;
        }
      });
    return { items: [{ insertText: '', isIncomplete: true, token }] };
  }

  private _controller: AbortController | null = null;
  private _providerSettings: IProviderSettings = { ...PROVIDER_DEFAULTS };
  private _hints = new GhostHints();
  private _noLibrary = new Map<string, number>();
  private _generation = 0;
  private _streams = new Map<string, AsyncQueue<IInlineCompletionItem>>();
}
