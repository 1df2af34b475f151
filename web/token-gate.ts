/**
 * The dispatcher's token, asked for before anything connects: `?token=` in the URL, else the one this tab
 * used last (sessionStorage), else a form. Each candidate is checked with one authenticated HTTP call, so a
 * wrong or expired token is refused on the form instead of as a silent WebSocket failure.
 */

const STORAGE_KEY = 'geodispatch.token';

/** Resolves with a token the server accepts for a dispatcher or admin. */
export async function obtainToken(location: Location, form: HTMLFormElement): Promise<string> {
  const fromUrl = new URLSearchParams(location.search).get('token');
  const stored = sessionStorage.getItem(STORAGE_KEY);
  for (const candidate of [fromUrl, stored]) {
    if (candidate && (await check(candidate)) === undefined) return remember(candidate);
  }
  const input = form.querySelector('textarea')!;
  const error = form.querySelector('.error')!;
  if (fromUrl) error.textContent = (await check(fromUrl)) ?? '';
  form.hidden = false;
  return new Promise((resolve) => {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const token = input.value.trim().replace(/^Bearer\s+/i, '');
      void check(token).then((problem) => {
        if (problem !== undefined) {
          error.textContent = problem;
          return;
        }
        form.hidden = true;
        resolve(remember(token));
      });
    });
  });
}

/** Why the token cannot watch, or undefined when it can. */
async function check(token: string): Promise<string | undefined> {
  const role = claims(token)?.role;
  if (role === undefined) return 'that is not a JWT (three base64url parts)';
  if (role !== 'dispatcher' && role !== 'admin') return `a ${String(role)} token cannot watch the map: use the dispatcher token`;
  try {
    const res = await fetch('/v1/nearby?lat=0&lng=0&kind=site&k=1', { headers: { authorization: `Bearer ${token}` } });
    if (res.ok) return undefined;
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
    return `the server refused the token (${res.status}${body.error?.message ? `: ${body.error.message}` : ''})`;
  } catch (err) {
    return `cannot reach the server: ${String(err)}`;
  }
}

function claims(token: string): { role?: unknown } | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { role?: unknown };
  } catch {
    return undefined;
  }
}

function remember(token: string): string {
  sessionStorage.setItem(STORAGE_KEY, token);
  return token;
}
