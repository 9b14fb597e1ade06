/**
 * Icons of the GALACTICA extension.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const galacticaSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" style="fill: none" stroke="#616161" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round" d="M17.3 7.2A7 7 0 1 0 19 12h-5.6"/>
  <ellipse class="jp-icon3" style="fill: none" stroke="#616161" stroke-width="1.1" cx="12" cy="12" rx="11.2" ry="3.6" transform="rotate(-24 12 12)"/>
  <circle class="jp-icon3" fill="#616161" cx="21" cy="5.2" r="1.4"/>
</svg>`;

/**
 * The GALACTICA icon: a "G" in an orbit, with a star.
 */
export const galacticaIcon = new LabIcon({
  name: 'galactica-ext:galactica',
  svgstr: galacticaSvg
});
