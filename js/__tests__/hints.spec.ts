import { GhostHints } from '../completer/hints';
import { describeEntry } from '../completer/provider';

describe('describeEntry', () => {
  it('writes title, first author and year', () => {
    expect(
      describeEntry({ title: 'Attention', author: 'Vaswani', year: 2017 })
    ).toBe('Attention (Vaswani, 2017)');
    expect(describeEntry({ title: 'Untitled', author: null })).toBe('Untitled');
  });
});

describe('GhostHints', () => {
  it('shows the hint of the suggestion the ghost text shows, and only then', async () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    const hints = new GhostHints(root);
    hints.describe(
      new Map([
        ['vaswani2017]', { text: 'Attention (Vaswani, 2017)', verified: true }]
      ])
    );
    const hint = () => document.querySelector('.jp-galactica-ghostHint');
    expect(hint()).toBeNull();
    const ghost = document.createElement('span');
    ghost.className = 'jp-GhostText';
    ghost.textContent = 'vaswani2017]';
    root.appendChild(ghost);
    await new Promise(resolve => setTimeout(resolve, 0)); // mutation observers run
    expect(hint()?.textContent).toBe('Attention (Vaswani, 2017)');
    ghost.textContent = 'something else]';
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(hint()).toBeNull();
    hints.dispose();
    root.remove();
  });
});
