import * as os from "node:os";
import * as path from "node:path";

/** Environment variable that names the socket (or pipe) explicitly. */
export const SOCKET_ENV = "CODEXD_SOCKET";

/** File name of the socket inside its directory. */
export const SOCKET_FILE_NAME = "codexd.sock";

/** What {@link resolveSocketPath} reads besides the environment; every field defaults to this process's. */
export interface ResolveSocketPathOptions {
  /** `process.platform` by default; `win32` selects the named pipe. */
  platform?: NodeJS.Platform;
  /** The user id for the `/tmp` fallback; `process.getuid()` by default. */
  uid?: number;
}

/**
 * The socket (or, on Windows, named pipe) codexd serves by default, by the same rules as `codexctl`:
 *
 * 1. `CODEXD_SOCKET`, if set and non-empty;
 * 2. Unix: `$XDG_RUNTIME_DIR/codexd/codexd.sock`, else `${TMPDIR:-/tmp}/codexd-$UID/codexd.sock`;
 *    Windows: `\\.\pipe\codexd-<USERNAME>` (`user` when `USERNAME` is unset).
 *
 * Empty variables count as unset. A pure function of its arguments: pass `env` (default `process.env`) to
 * resolve for another environment.
 */
export function resolveSocketPath(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: ResolveSocketPathOptions = {},
): string {
  const get = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === "" ? undefined : value;
  };
  const explicit = get(SOCKET_ENV);
  if (explicit !== undefined) {
    return explicit;
  }
  const platform = options.platform ?? process.platform;
  if (platform === "win32") {
    return `\\\\.\\pipe\\codexd-${get("USERNAME") ?? "user"}`;
  }
  const runtimeDir = get("XDG_RUNTIME_DIR");
  if (runtimeDir !== undefined) {
    return path.posix.join(runtimeDir, "codexd", SOCKET_FILE_NAME);
  }
  const uid = options.uid ?? currentUid();
  return path.posix.join(get("TMPDIR") ?? "/tmp", `codexd-${uid}`, SOCKET_FILE_NAME);
}

function currentUid(): number {
  if (typeof process.getuid === "function") {
    return process.getuid();
  }
  // Only reached off Unix with a non-win32 platform forced by the caller.
  return os.userInfo().uid;
}
