/**
 * Couriers drawn straight from a typed array as WebGL points: one MapLibre custom layer, one buffer upload
 * and one draw call per frame, however many couriers are in view (a GeoJSON source would re-tile 10,000
 * features on a worker for every animation step).
 *
 *   render(gl, projection) ─► fleet.fill(buffer, origin = map centre, now) ─► bufferData ─► drawArrays(POINTS)
 *                          └► still gliding? ─► triggerRepaint (the next frame animates further)
 */
import type { CustomLayerInterface, CustomRenderMethodInput, Map as MapLibreMap } from 'maplibre-gl';
import type { CourierFleet } from './courier-fleet.js';
import { COURIER_STATUSES, OFFLINE_CODE, STATUS_RGB } from './palette.js';

const VERTEX = `#version 300 es
uniform mat4 u_matrix;
uniform float u_size;
uniform float u_offline_scale;
uniform vec3 u_colors[${COURIER_STATUSES.length}];
in vec2 a_pos;
in float a_status;
out vec3 v_color;
void main() {
  // offline couriers smaller, or hidden with scale 0 (clipped: size 0 still rasterizes 1 px)
  float size = abs(a_status - ${OFFLINE_CODE}.0) < 0.5 ? u_size * u_offline_scale : u_size;
  gl_Position = size > 0.0 ? u_matrix * vec4(a_pos, 0.0, 1.0) : vec4(2.0, 2.0, 2.0, 1.0);
  gl_PointSize = size;
  v_color = u_colors[int(a_status + 0.5)];
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec3 v_color;
out vec4 fragColor;
void main() {
  vec2 p = gl_PointCoord * 2.0 - 1.0;
  float r = dot(p, p);
  if (r > 1.0) discard;
  // a white rim on the outer quarter of the radius: dots stay readable over fences and density cells
  vec3 c = r > 0.55 ? vec3(1.0) : v_color;
  fragColor = vec4(c, 1.0);
}`;

/** The courier layer for `map.addLayer`. */
export function createCourierLayer(fleet: CourierFleet, showOffline: () => boolean = () => true, now: () => number = () => performance.now()): CustomLayerInterface {
  let map: MapLibreMap;
  let program: WebGLProgram;
  let buffer: WebGLBuffer;
  let data = new Float32Array(3 * 1024);
  let loc: { matrix: WebGLUniformLocation | null; size: WebGLUniformLocation | null; offline: WebGLUniformLocation | null; colors: WebGLUniformLocation | null; pos: number; status: number };
  const colors = new Float32Array(COURIER_STATUSES.flatMap((s) => STATUS_RGB[s]));
  const matrix = new Float32Array(16);

  return {
    id: 'couriers',
    type: 'custom',
    renderingMode: '2d',
    onAdd(m: MapLibreMap, gl: WebGL2RenderingContext) {
      map = m;
      program = link(gl, VERTEX, FRAGMENT);
      buffer = gl.createBuffer()!;
      loc = {
        matrix: gl.getUniformLocation(program, 'u_matrix'),
        size: gl.getUniformLocation(program, 'u_size'),
        offline: gl.getUniformLocation(program, 'u_offline_scale'),
        colors: gl.getUniformLocation(program, 'u_colors'),
        pos: gl.getAttribLocation(program, 'a_pos'),
        status: gl.getAttribLocation(program, 'a_status'),
      };
    },
    render(gl: WebGL2RenderingContext, options: CustomRenderMethodInput) {
      if (fleet.size === 0) return;
      const t = now();
      const c = map.getCenter();
      const ox = (180 + c.lng) / 360;
      const oy = (180 - (180 / Math.PI) * Math.log(Math.tan(Math.PI / 4 + (c.lat * Math.PI) / 360))) / 360;
      const filled = fleet.fill(data, ox, oy, t);
      data = filled.data;
      translate(options.defaultProjectionData.mainMatrix as ArrayLike<number>, ox, oy, matrix);

      gl.useProgram(program);
      gl.uniformMatrix4fv(loc.matrix, false, matrix);
      // 3 px at city zoom 10 to 9 px at street zoom 16: individual couriers stay distinguishable in both
      const px = Math.min(9, Math.max(3, map.getZoom() - 7));
      gl.uniform1f(loc.size, px * 2 * devicePixelRatio);
      gl.uniform3fv(loc.colors, colors);
      gl.uniform1f(loc.offline, showOffline() ? 0.7 : 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, data.subarray(0, fleet.size * 3), gl.STREAM_DRAW);
      gl.enableVertexAttribArray(loc.pos);
      gl.vertexAttribPointer(loc.pos, 2, gl.FLOAT, false, 12, 0);
      gl.enableVertexAttribArray(loc.status);
      gl.vertexAttribPointer(loc.status, 1, gl.FLOAT, false, 12, 8);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
      gl.drawArrays(gl.POINTS, 0, fleet.size);
      gl.disableVertexAttribArray(loc.pos);
      gl.disableVertexAttribArray(loc.status);
      if (filled.moving) map.triggerRepaint();
    },
  };
}

/** out = m · translate(ox, oy, 0), in float64 before the float32 store (the precision trick of the origin). */
function translate(m: ArrayLike<number>, ox: number, oy: number, out: Float32Array): void {
  for (let i = 0; i < 12; i++) out[i] = m[i];
  for (let r = 0; r < 4; r++) out[12 + r] = m[r] * ox + m[4 + r] * oy + m[12 + r];
}

function link(gl: WebGL2RenderingContext, vs: string, fs: string): WebGLProgram {
  const p = gl.createProgram()!;
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]] as const) {
    const s = gl.createShader(type)!;
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`courier shader: ${gl.getShaderInfoLog(s) ?? 'compile failed'}`);
    gl.attachShader(p, s);
  }
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`courier program: ${gl.getProgramInfoLog(p) ?? 'link failed'}`);
  return p;
}
