/**
 * The part of react-dom/client the specs use (the package ships no types here).
 */
declare module 'react-dom/client' {
  import * as React from 'react';

  export interface Root {
    render(children: React.ReactNode): void;
    unmount(): void;
  }

  export function createRoot(container: Element): Root;
}
