// Drawing the live layer: one WebGL2 draw call of point sprites, each interpolated on the GPU
// from its last to its new position. Used in a worker on an OffscreenCanvas (so the drawing, and
// on software-composited walls the read-back of every frame, stay off the page's main thread),
// or on the page itself where a browser has no OffscreenCanvas.

export const STRIDE = 12; // fromX fromY toX toY t0 shape fill ring heading flags size pad

const VS = `#version 300 es
in vec2 a_from; in vec2 a_to; in float a_t0;
in vec4 a_style; // shape, fill rgb24, ring rgb24, heading
in vec2 a_flags; // flags, size
uniform vec2 u_center; uniform float u_world; uniform vec2 u_viewport;
uniform float u_now; uniform float u_dur; uniform float u_scale;
out vec3 v_fill; out vec3 v_ring; out float v_shape; out vec2 v_rot; out float v_flags;
vec3 unpack(float c) {
  float r = floor(c / 65536.0); float g = floor((c - r * 65536.0) / 256.0);
  float b = c - r * 65536.0 - g * 256.0;
  return vec3(r, g, b) / 255.0;
}
void main() {
  float flags = a_flags.x;
  float k = clamp((u_now - a_t0) / u_dur, 0.0, 1.0);
  vec2 m = mix(a_from, a_to, k);
  vec2 px = (m - u_center) * u_world;
  gl_Position = vec4(px.x / (u_viewport.x * 0.5), -px.y / (u_viewport.y * 0.5), 0.0, 1.0);
  bool hidden = mod(floor(flags / 8.0), 2.0) > 0.5;
  bool selected = mod(floor(flags / 2.0), 2.0) > 0.5;
  bool alarm = mod(floor(flags / 16.0), 2.0) > 0.5;
  float size = a_flags.y * u_scale * (selected ? 2.0 : (alarm ? 1.6 : 1.0));
  gl_PointSize = hidden ? 0.0 : size;
  if (hidden) gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
  v_fill = unpack(a_style.y); v_ring = unpack(a_style.z);
  float h = a_style.x < 0.5 ? radians(a_style.w) : 0.0;
  v_shape = a_style.x; v_rot = vec2(cos(h), sin(h)); v_flags = flags;
}`;

// Shapes come from a small atlas drawn once (fill in red, silhouette in green): a texture
// fetch per pixel instead of distance maths, which a software renderer feels at 10,000 units.
const FS = `#version 300 es
precision highp float;
in vec3 v_fill; in vec3 v_ring; in float v_shape; in vec2 v_rot; in float v_flags;
uniform float u_now;
uniform sampler2D u_atlas;
out vec4 color;
void main() {
  vec2 p = gl_PointCoord * 2.0 - 1.0;
  float halo = 0.0;
  float shrink = 1.0;
  bool selected = mod(floor(v_flags / 2.0), 2.0) > 0.5;
  bool alarm = mod(floor(v_flags / 16.0), 2.0) > 0.5;
  if (selected) { shrink = 0.5; halo = 1.0 - smoothstep(0.06, 0.12, abs(length(p) - 0.88)); }
  else if (alarm) {
    shrink = 0.62;
    float r = 0.7 + 0.25 * fract(u_now * 0.8);
    halo = (1.0 - smoothstep(0.05, 0.1, abs(length(p) - r))) * (1.0 - fract(u_now * 0.8));
  }
  vec2 q = p / shrink;
  vec2 r = vec2(v_rot.x * q.x + v_rot.y * q.y, -v_rot.y * q.x + v_rot.x * q.y);
  vec4 m = vec4(0.0);
  if (abs(r.x) < 1.0 && abs(r.y) < 1.0) {
    m = texture(u_atlas, vec2((v_shape + r.x * 0.5 + 0.5) / 6.0, r.y * 0.5 + 0.5));
  }
  vec3 fill = v_fill;
  float alpha = 1.0;
  if (mod(v_flags, 2.0) > 0.5) { fill = mix(v_fill, vec3(0.35, 0.38, 0.42), 0.75); alpha = 0.55; }
  vec3 rgb = mix(v_ring, fill, m.r);
  float a = m.g * alpha;
  vec3 haloColor = selected ? vec3(1.0) : vec3(1.0, 0.23, 0.23);
  rgb = mix(haloColor, rgb, a);
  a = max(a, halo);
  if (a < 0.01) discard;
  color = vec4(rgb * a, a);
}`;

const CELL = 64;

// The six marker shapes, each in a 64 px cell; the vehicle points up (north) before rotation.
function shapePath(i, inset) {
  const p = new Path2D();
  const c = CELL / 2;
  if (i === 0) {
    p.moveTo(c, 3 + inset * 1.6);
    p.lineTo(c + 17 - inset, 30);
    p.arc(c, 38, 17 - inset, -0.1 * Math.PI, 1.1 * Math.PI);
    p.lineTo(c - 17 + inset, 30);
    p.closePath();
  } else if (i === 1) p.arc(c, c, 22 - inset, 0, 2 * Math.PI);
  else if (i === 2) {
    const r = 26 - inset * 1.4;
    p.moveTo(c, c - r); p.lineTo(c + r, c); p.lineTo(c, c + r); p.lineTo(c - r, c); p.closePath();
  } else if (i === 3) p.rect(12 + inset, 12 + inset, 40 - 2 * inset, 40 - 2 * inset);
  else if (i === 4) p.arc(c, c, 15 - inset, 0, 2 * Math.PI);
  else {
    p.moveTo(c, 6 + inset * 2); p.lineTo(58 - inset * 1.7, 54 - inset); p.lineTo(6 + inset * 1.7, 54 - inset);
    p.closePath();
  }
  return p;
}

function atlasPixels() {
  const draw = (inset) => {
    const cv = typeof OffscreenCanvas !== 'undefined'
      ? new OffscreenCanvas(CELL * 6, CELL) : document.createElement('canvas');
    cv.width = CELL * 6; cv.height = CELL;
    const g = cv.getContext('2d');
    g.fillStyle = '#fff';
    for (let i = 0; i < 6; i++) {
      g.save(); g.translate(i * CELL, 0); g.fill(shapePath(i, inset)); g.restore();
    }
    return g.getImageData(0, 0, cv.width, cv.height).data;
  };
  const outer = draw(0), inner = draw(5);
  const out = new Uint8Array(outer.length);
  for (let k = 0; k < outer.length; k += 4) {
    out[k] = inner[k + 3]; out[k + 1] = outer[k + 3]; out[k + 3] = 255;
  }
  return out;
}

function compile(gl, type, src) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, src);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(sh));
  return sh;
}

export class PointRenderer {
  constructor(gl) {
    this.gl = gl;
    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    this.prog = prog;
    this.buf = gl.createBuffer();
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
    const attr = (name, size, offset) => {
      const loc = gl.getAttribLocation(prog, name);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, gl.FLOAT, false, STRIDE * 4, offset * 4);
    };
    attr('a_from', 2, 0);
    attr('a_to', 2, 2);
    attr('a_t0', 1, 4);
    attr('a_style', 4, 5);
    attr('a_flags', 2, 9);
    gl.bindVertexArray(null);
    this.atlas = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.atlas);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, CELL * 6, CELL, 0, gl.RGBA, gl.UNSIGNED_BYTE, atlasPixels());
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.u = {};
    for (const n of ['u_center', 'u_world', 'u_viewport', 'u_now', 'u_dur', 'u_scale', 'u_atlas']) {
      this.u[n] = gl.getUniformLocation(prog, n);
    }
    this.count = 0;
  }

  upload(data, count) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
    gl.bufferData(gl.ARRAY_BUFFER, data.subarray(0, count * STRIDE), gl.DYNAMIC_DRAW);
    this.count = count;
  }

  // f: { width, height, cx, cy, world (device px), now, dur, scale }
  draw(f) {
    const gl = this.gl;
    gl.viewport(0, 0, f.width, f.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!this.count) return;
    gl.useProgram(this.prog);
    gl.uniform2f(this.u.u_center, f.cx, f.cy);
    gl.uniform1f(this.u.u_world, f.world);
    gl.uniform2f(this.u.u_viewport, f.width, f.height);
    gl.uniform1f(this.u.u_now, f.now);
    gl.uniform1f(this.u.u_dur, f.dur);
    gl.uniform1f(this.u.u_scale, f.scale);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.atlas);
    gl.uniform1i(this.u.u_atlas, 0);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.POINTS, 0, this.count);
    gl.bindVertexArray(null);
  }
}

export const GL_OPTIONS = { premultipliedAlpha: true, antialias: false, alpha: true };
