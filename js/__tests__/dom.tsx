/**
 * Render React elements into jsdom for the panel's specs (React 18's root and act).
 */
import * as React from 'react';
import { createRoot, Root } from 'react-dom/client';

// tell React that updates in these tests are wrapped in act()
(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

/**
 * A mounted element: its container, and what to call when done.
 */
export interface IMounted {
  container: HTMLElement;
  rerender: (element: React.ReactElement) => Promise<void>;
  unmount: () => Promise<void>;
}

/**
 * Mount an element into a new container attached to the document.
 */
export async function mount(element: React.ReactElement): Promise<IMounted> {
  const container = document.createElement('div');
  document.body.appendChild(container);
  let root: Root | null = null;
  await React.act(async () => {
    root = createRoot(container);
    root.render(element);
  });
  return {
    container,
    rerender: async next => {
      await React.act(async () => root!.render(next));
    },
    unmount: async () => {
      await React.act(async () => root!.unmount());
      container.remove();
    }
  };
}

/**
 * Run something that changes React state (a click, a promise settling) and let React render.
 */
export async function act(fn: () => unknown = () => undefined): Promise<void> {
  await React.act(async () => {
    await fn();
  });
}

/**
 * Click an element.
 */
export async function click(element: Element | null): Promise<void> {
  if (!element) {
    throw new Error('nothing to click');
  }
  await act(() =>
    element.dispatchEvent(new MouseEvent('click', { bubbles: true }))
  );
}

/**
 * Type a value into an input or choose a select's option, as React sees it.
 */
export async function setValue(
  element: HTMLInputElement | HTMLSelectElement | null,
  value: string
): Promise<void> {
  if (!element) {
    throw new Error('no such field');
  }
  const proto = Object.getPrototypeOf(element);
  const setter = Object.getOwnPropertyDescriptor(proto, 'value')!.set!;
  await act(() => {
    setter.call(element, value);
    element.dispatchEvent(
      new Event(element.tagName === 'SELECT' ? 'change' : 'input', {
        bubbles: true
      })
    );
  });
}

/**
 * A promise and the functions that settle it, so a test decides when a run ends.
 */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
