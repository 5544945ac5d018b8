// A panel that fails while mounting, as a panel with a bug would: it has already put part of
// itself on the wall when it throws.
export function mount(ctx) {
  ctx.column('right').append(ctx.el('section', { class: 'panel', id: 'broken-half' }, ctx.t('half')));
  const settings = null;
  return { limit: settings.limit }; // TypeError: the shell must contain it
}
