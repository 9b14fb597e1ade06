import { pickerChoice } from '../panel';

describe('pickerChoice', () => {
  it('maps sizes and their hub ids to the size entry', () => {
    expect(pickerChoice('1.3b')).toEqual({ choice: '1.3b', custom: '' });
    expect(pickerChoice('facebook/galactica-30b')).toEqual({
      choice: '30b',
      custom: ''
    });
  });

  it('shows other hub ids and directories as a custom source', () => {
    expect(pickerChoice('/data/galactica-tiny')).toEqual({
      choice: 'custom',
      custom: '/data/galactica-tiny'
    });
    expect(pickerChoice('me/galactica-finetuned')).toEqual({
      choice: 'custom',
      custom: 'me/galactica-finetuned'
    });
  });

  it('falls back to the default size when nothing is set', () => {
    expect(pickerChoice('')).toEqual({ choice: '125m', custom: '' });
  });
});
