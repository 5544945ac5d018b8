// The live layer's drawing thread: owns the OffscreenCanvas, draws each frame the page sends
// (camera, clock and, when units changed, their attribute array) and says when it is done, so
// the page never queues more than one frame ahead.

import { PointRenderer, GL_OPTIONS } from './live-gl.js';

let canvas = null;
let renderer = null;

self.onmessage = (ev) => {
  const m = ev.data;
  try {
    if (m.type === 'init') {
      canvas = m.canvas;
      const gl = canvas.getContext('webgl2', GL_OPTIONS);
      if (!gl) throw new Error('WebGL2 is not available in a worker');
      renderer = new PointRenderer(gl);
      return;
    }
    if (m.type === 'frame' && renderer) {
      if (canvas.width !== m.width || canvas.height !== m.height) {
        canvas.width = m.width;
        canvas.height = m.height;
      }
      if (m.data) renderer.upload(m.data, m.count);
      renderer.draw(m);
    }
  } catch (err) {
    self.postMessage({ type: 'error', message: String(err && err.message) });
  }
  if (m.type === 'frame') self.postMessage({ type: 'drawn' });
};
