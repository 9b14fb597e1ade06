/**
 * The extension's translations (domain `galactica_ext`).
 */
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';

const current: { trans: TranslationBundle } = {
  trans: nullTranslator.load('galactica_ext')
};

/**
 * Use the app's translator (called once, when the extension activates).
 */
export function setTranslator(translator: ITranslator | null): void {
  current.trans = (translator ?? nullTranslator).load('galactica_ext');
}

/**
 * The translation bundle.
 */
export function trans(): TranslationBundle {
  return current.trans;
}
