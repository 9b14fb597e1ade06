/**
 * What every sidebar run shows: its progress (the streamed text, "Stopped.", the error), and
 * under its result Insert, Copy (which says when it copied) and the caveat that GALACTICA
 * can make things up.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { ITaskRunState } from './useTask';

/**
 * How long Copy says "Copied" (ms).
 */
const COPIED_MS = 1500;

/**
 * The caveat shown with every result.
 */
export function Caveat(props: {
  trans: TranslationBundle;
  notice?: string;
}): JSX.Element {
  return (
    <div className="jp-galactica-note jp-galactica-caveat">
      {props.notice ||
        props.trans.__(
          'GALACTICA can make things up (citations, numbers, molecules): check what it writes.'
        )}
    </div>
  );
}

/**
 * A run's progress: the text streamed so far while it runs, then how it ended if not well.
 */
export function RunProgress(props: {
  state: ITaskRunState<unknown>;
  trans: TranslationBundle;
}): JSX.Element {
  const { state, trans } = props;
  return (
    <>
      {state.phase === 'running' && (
        <pre className="jp-galactica-stream">{state.streamed || '...'}</pre>
      )}
      {state.phase === 'stopped' && (
        <div className="jp-galactica-error">{trans.__('Stopped.')}</div>
      )}
      {state.error && <div className="jp-galactica-error">{state.error}</div>}
    </>
  );
}

/**
 * Insert and Copy under a result, then the caveat.
 */
export function ResultActions(props: {
  onInsert: () => void;
  canInsert: boolean;
  /**
   * What Copy puts on the clipboard.
   */
  copyText: () => string;
  notice?: string;
  trans: TranslationBundle;
}): JSX.Element {
  const { trans } = props;
  const [copied, setCopied] = React.useState(false);
  React.useEffect(() => {
    if (!copied) {
      return;
    }
    const timer = setTimeout(() => setCopied(false), COPIED_MS);
    return () => clearTimeout(timer);
  }, [copied]);
  return (
    <>
      <div className="jp-galactica-buttons">
        <button
          className="jp-mod-styled jp-mod-accept jp-galactica-insert"
          onClick={props.onInsert}
          disabled={!props.canInsert}
        >
          {trans.__('Insert')}
        </button>
        <button
          className="jp-mod-styled jp-galactica-copy"
          onClick={() => {
            Clipboard.copyToSystem(props.copyText());
            setCopied(true);
          }}
        >
          {copied ? trans.__('Copied') : trans.__('Copy')}
        </button>
      </div>
      <Caveat trans={trans} notice={props.notice} />
    </>
  );
}
