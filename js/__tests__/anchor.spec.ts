import { YFile, YNotebook } from '@jupyter/ydoc';

import { mapOffset, TextAnchor } from '../anchor';
import { InsertionUndo, isUndoKey } from '../undo';

describe('mapOffset', () => {
  it('moves an offset past text inserted before it', () => {
    expect(mapOffset(5, [{ retain: 2 }, { insert: 'abc' }])).toBe(8);
  });

  it('keeps an offset before text inserted at it or after it', () => {
    expect(mapOffset(5, [{ retain: 5 }, { insert: 'abc' }])).toBe(5);
    expect(mapOffset(5, [{ retain: 7 }, { insert: 'abc' }])).toBe(5);
  });

  it('pulls an offset back over deleted text', () => {
    expect(mapOffset(5, [{ delete: 2 }])).toBe(3);
    expect(mapOffset(5, [{ retain: 3 }, { delete: 4 }])).toBe(3);
    expect(mapOffset(5, [{ retain: 5 }, { delete: 4 }])).toBe(5);
  });
});

describe('TextAnchor', () => {
  it('follows edits above it in a real shared file', () => {
    const file = new YFile();
    file.setSource('first line\nthe sentence to cite');
    const at = file.getSource().length;
    const anchor = new TextAnchor(file, at, at);
    file.updateSource(0, 0, 'A new title\n\n'); // the user edits above
    file.updateSource(at + 13, at + 13, ' and more'); // and types on after it
    expect(anchor.start).toBe(at + 13);
    expect(file.getSource().slice(0, anchor.start)).toBe(
      'A new title\n\nfirst line\nthe sentence to cite'
    );
    anchor.dispose();
    file.updateSource(0, 0, 'x');
    expect(anchor.start).toBe(at + 13); // no longer followed
    file.dispose();
  });

  it('follows a cell of a notebook', () => {
    const notebook = new YNotebook();
    const cell = notebook.insertCell(0, {
      cell_type: 'markdown',
      source: 'Energy'
    });
    const anchor = new TextAnchor(cell, 6, 6);
    cell.updateSource(0, 0, 'Rest ');
    expect(anchor.start).toBe(11);
    cell.updateSource(0, 11, '');
    expect(anchor.start).toBe(0);
    anchor.dispose();
    notebook.dispose();
  });
});

describe('InsertionUndo', () => {
  const key = (init: KeyboardEventInit) => new KeyboardEvent('keydown', init);

  it('knows the undo keys', () => {
    expect(isUndoKey(key({ key: 'z', ctrlKey: true }))).toBe(true);
    expect(isUndoKey(key({ key: 'z', metaKey: true }))).toBe(true);
    expect(isUndoKey(key({ key: 'Z', ctrlKey: true, shiftKey: true }))).toBe(
      false
    );
    expect(isUndoKey(key({ key: 'z' }))).toBe(false);
  });

  it('removes only the inserted text on the first Ctrl+Z', () => {
    const host = document.createElement('div');
    document.body.appendChild(host);
    const file = new YFile();
    file.setSource('my text');
    file.updateSource(7, 7, '\n\nTL;DR');
    const undo = InsertionUndo.forText(host, file, 7, '\n\nTL;DR');
    file.updateSource(0, 0, '> '); // an edit elsewhere moves it
    const event = key({
      key: 'z',
      ctrlKey: true,
      bubbles: true,
      cancelable: true
    });
    host.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(true);
    expect(file.getSource()).toBe('> my text');
    expect(undo.isDisposed).toBe(true);
    host.remove();
    file.dispose();
  });

  it('is disarmed by any other key first', () => {
    const host = document.createElement('div');
    const file = new YFile();
    file.setSource('my text TL;DR');
    const undo = InsertionUndo.forText(host, file, 7, ' TL;DR');
    host.dispatchEvent(key({ key: 'Shift', bubbles: true }));
    expect(undo.armed).toBe(true);
    host.dispatchEvent(key({ key: 'a', bubbles: true }));
    expect(undo.armed).toBe(false);
    const event = key({
      key: 'z',
      ctrlKey: true,
      bubbles: true,
      cancelable: true
    });
    host.dispatchEvent(event);
    expect(event.defaultPrevented).toBe(false);
    expect(file.getSource()).toBe('my text TL;DR');
    // the notification's Undo still works
    expect(undo.undo()).toBe(true);
    expect(file.getSource()).toBe('my text');
    file.dispose();
  });
});
