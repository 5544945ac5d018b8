// The seam probe's panel: mounts itself from what /apps says, builds DOM safely.
export function mount(ctx) {
  const box = ctx.el('section', { class: 'panel', id: 'probe-panel' },
    ctx.el('h2', {}, ctx.t('probe_title')));
  ctx.column('right').append(box);
  return { box };
}
