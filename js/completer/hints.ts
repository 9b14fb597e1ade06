/**
 * A line under the ghost text saying what a suggestion is: the library entry's title behind
 * a key (`[@vaswani2017]`), or that a free suggestion is unverified.
 *
 * JupyterLab's ghost text shows only the text to insert, so the hint follows the ghost text
 * element: when it shows a suggestion we described, the hint appears under it.
 */
import { IDisposable } from '@lumino/disposable';

/**
 * What a suggestion is.
 */
export interface ISuggestionHint {
  /**
   * The hint's text, e.g. `Attention is all you need — Vaswani, 2017`.
   */
  text: string;
  /**
   * Whether the suggestion is from the user's library (else it is unverified).
   */
  verified: boolean;
}

/**
 * The text a ghost text element shows (its folded-line markers aside).
 */
function ghostText(node: Element): string {
  const copy = node.cloneNode(true) as HTMLElement;
  copy
    .querySelectorAll('.jp-GhostText-expandHidden')
    .forEach(marker => marker.remove());
  return (copy.textContent ?? '').trim();
}

/**
 * Shows hints for the suggestions described with {@link GhostHints.describe}.
 */
export class GhostHints implements IDisposable {
  constructor(private readonly _root: HTMLElement = document.body) {
    this._node.className = 'jp-galactica-ghostHint';
    this._node.setAttribute('role', 'status');
    this._observer = new MutationObserver(() => this._update());
  }

  /**
   * Describe the suggestions about to be shown (insert text -> hint); replaces the last.
   */
  describe(hints: Map<string, ISuggestionHint>): void {
    this._hints = new Map(
      [...hints].map(([text, hint]) => [text.trim(), hint])
    );
    if (!this._observing && hints.size > 0) {
      this._observer.observe(this._root, {
        childList: true,
        subtree: true,
        characterData: true
      });
      this._observing = true;
    }
    this._update();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._observer.disconnect();
    this._node.remove();
  }

  private _update(): void {
    const ghost = this._root.querySelector('.jp-GhostText');
    const hint = ghost ? this._hints.get(ghostText(ghost)) : undefined;
    if (!ghost || !hint) {
      if (this._node.isConnected) {
        this._node.remove();
      }
      return;
    }
    if (this._node.textContent !== hint.text) {
      this._node.textContent = hint.text;
    }
    this._node.dataset.verified = String(hint.verified);
    const rect = ghost.getBoundingClientRect();
    this._node.style.left = `${Math.round(rect.left)}px`;
    this._node.style.top = `${Math.round(rect.bottom + 2)}px`;
    if (!this._node.isConnected) {
      document.body.appendChild(this._node);
    }
  }

  private _disposed = false;
  private _hints = new Map<string, ISuggestionHint>();
  private _node = document.createElement('div');
  private _observer: MutationObserver;
  private _observing = false;
}
