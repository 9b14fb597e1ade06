/**
 * A React hook that runs one task at a time: streams its first choice, keeps its result or
 * error, stops it on request, and drops what a superseded run sends late.
 */
import * as React from 'react';

import { isAbortError, IStreamCallbacks } from '../api';

/**
 * Where a run is.
 */
export type TaskPhase = 'idle' | 'running' | 'done' | 'failed' | 'stopped';

/**
 * The state of the hook's current run.
 */
export interface ITaskRunState<R> {
  /**
   * Where the run is.
   */
  phase: TaskPhase;
  /**
   * The text streamed so far (the first choice).
   */
  streamed: string;
  /**
   * The result, once `phase` is `done`.
   */
  result: R | null;
  /**
   * Why the run failed, once `phase` is `failed`.
   */
  error: string | null;
}

/**
 * Runs a task: given the stream callbacks (with the abort signal), resolves to its result.
 */
export type TaskRunner<R> = (callbacks: IStreamCallbacks) => Promise<R>;

/**
 * What {@link useTask} returns.
 */
export interface ITaskHandle<R> {
  /**
   * The current run's state.
   */
  state: ITaskRunState<R>;
  /**
   * Start a run (a running one is stopped first); resolves when it ends.
   */
  start: (runner: TaskRunner<R>) => Promise<void>;
  /**
   * Stop the running run (its state becomes `stopped`).
   */
  stop: () => void;
  /**
   * Show an error without running anything (e.g. nothing to work on).
   */
  fail: (message: string) => void;
}

/**
 * The state before any run.
 */
export const IDLE: ITaskRunState<never> = {
  phase: 'idle',
  streamed: '',
  result: null,
  error: null
};

/**
 * The message of something thrown.
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message || String(error);
  }
  return String(error);
}

/**
 * Run tasks one at a time; the component's unmount stops a running one.
 */
export function useTask<R>(): ITaskHandle<R> {
  const [state, setState] = React.useState<ITaskRunState<R>>(IDLE);
  const controller = React.useRef<AbortController | null>(null);
  // each run's number: callbacks of a superseded run change nothing
  const current = React.useRef(0);

  React.useEffect(() => () => controller.current?.abort(), []);

  const stop = React.useCallback(() => controller.current?.abort(), []);

  const fail = React.useCallback((message: string) => {
    controller.current?.abort();
    current.current++;
    setState({ ...IDLE, phase: 'failed', error: message });
  }, []);

  const start = React.useCallback(async (runner: TaskRunner<R>) => {
    controller.current?.abort();
    const abort = new AbortController();
    controller.current = abort;
    const run = ++current.current;
    const mine = (update: (s: ITaskRunState<R>) => ITaskRunState<R>) => {
      if (run === current.current) {
        setState(update);
      }
    };
    setState({ ...IDLE, phase: 'running' });
    try {
      const result = await runner({
        signal: abort.signal,
        onToken: (token, index) => {
          if (index === 0) {
            mine(s => ({ ...s, streamed: s.streamed + token }));
          }
        }
      });
      mine(s => ({ ...s, phase: 'done', result }));
    } catch (error) {
      mine(s =>
        isAbortError(error)
          ? { ...s, phase: 'stopped' }
          : { ...s, phase: 'failed', error: errorMessage(error) }
      );
    } finally {
      if (controller.current === abort) {
        controller.current = null;
      }
    }
  }, []);

  return { state, start, stop, fail };
}
