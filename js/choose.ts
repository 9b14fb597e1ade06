/**
 * "Cite here"'s dialog: the suggested references as a list of wrapped, readable choices.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { trans } from './i18n';
import { verifyUrl } from './references';
import { IReferenceSuggestion } from './tokens';

/**
 * A radio list of suggestions, each its title, first author and a "search for it" link.
 */
export class ReferenceChoices
  extends Widget
  implements Dialog.IBodyWidget<number>
{
  /**
   * List `suggestions`, the first one chosen.
   */
  constructor(suggestions: readonly IReferenceSuggestion[]) {
    super();
    this.addClass('jp-galactica-choices');
    const note = document.createElement('p');
    note.className = 'jp-galactica-note';
    note.textContent = trans().__(
      'Suggested by GALACTICA. Citations can be invented, more often for rare works: check that the work exists before you rely on it.'
    );
    const list = document.createElement('ul');
    list.setAttribute('role', 'radiogroup');
    list.setAttribute('aria-label', trans().__('Suggested references'));
    suggestions.forEach((suggestion, i) => {
      const item = document.createElement('li');
      item.className = 'jp-galactica-choice';
      const label = document.createElement('label');
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'galactica-reference';
      radio.value = String(i);
      radio.checked = i === 0;
      radio.addEventListener('change', () => {
        this._chosen = i;
      });
      const title = document.createElement('span');
      title.className = 'jp-galactica-choice-title';
      title.textContent = suggestion.title || suggestion.text;
      label.append(radio, title);
      if (suggestion.author) {
        const author = document.createElement('span');
        author.className = 'jp-galactica-citation-author';
        author.textContent = suggestion.author;
        label.append(author);
      }
      const link = document.createElement('a');
      link.href = verifyUrl(suggestion);
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.textContent = trans().__('search');
      link.title = trans().__('Search for this work');
      item.append(label, link);
      list.append(item);
    });
    this.node.append(note, list);
  }

  /**
   * The chosen suggestion's index.
   */
  getValue(): number {
    return this._chosen;
  }

  private _chosen = 0;
}

/**
 * Ask the user to choose one of the suggested references.
 */
export async function chooseReference(
  suggestions: IReferenceSuggestion[]
): Promise<IReferenceSuggestion | null> {
  if (suggestions.length === 0) {
    Notification.warning(
      trans().__('GALACTICA suggested no reference for this text.'),
      {
        autoClose: 4000
      }
    );
    return null;
  }
  const answer = await showDialog({
    title: trans().__('Cite: choose a reference'),
    body: new ReferenceChoices(suggestions),
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: trans().__('Cite') })
    ]
  });
  if (!answer.button.accept || answer.value === null) {
    return null;
  }
  return suggestions[answer.value] ?? null;
}
