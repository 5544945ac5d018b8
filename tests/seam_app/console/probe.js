// The seam probe's panel: mounts itself from what /apps says, builds DOM safely. Its title
// carries its dictionary key, so the console re-words it when the language changes.
export function mount(ctx) {
  const box = ctx.el('section', { class: 'panel', id: 'probe-panel' },
    ctx.el('h2', { i18n: 'probe_title' }, ctx.t('probe_title')));
  ctx.column('right').append(box);
  return { box };
}
