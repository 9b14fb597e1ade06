/**
 * Icons of the GALACTICA extension.
 */
import { LabIcon } from '@jupyterlab/ui-components';

const galacticaSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2.5c.4 0 .7.3.8.6l1.3 4.3 4.3 1.3c.4.1.6.4.6.8s-.3.7-.6.8l-4.3 1.3-1.3 4.3c-.1.4-.4.6-.8.6s-.7-.3-.8-.6L9.9 11.6 5.6 10.3c-.4-.1-.6-.4-.6-.8s.3-.7.6-.8l4.3-1.3L11.2 3.1c.1-.3.4-.6.8-.6z"/>
    <circle cx="18.5" cy="17.5" r="2"/>
    <circle cx="6" cy="18.5" r="1.3"/>
    <path d="M3 13.5c3.5 4.5 10.5 6.5 18 3.2l.4.9C13.5 21.2 5.9 19 2.2 14.1z"/>
  </g>
</svg>`;

/**
 * The GALACTICA icon: a spiral galaxy's bright core and an orbit.
 */
export const galacticaIcon = new LabIcon({
  name: 'galactica-ext:galactica',
  svgstr: galacticaSvg
});
