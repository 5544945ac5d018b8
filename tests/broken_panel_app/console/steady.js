// The broken panel's neighbour in the same application: it must mount and show its words.
export function mount(ctx) {
  const box = ctx.el('section', { class: 'panel', id: 'steady-panel' },
    ctx.el('h2', {}, ctx.t('steady_title')));
  ctx.column('right').append(box);
  ctx.onLang(() => { box.querySelector('h2').textContent = ctx.t('steady_title'); });
  return { box };
}
