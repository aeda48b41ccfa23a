// Build step: the Lua scripts are read at runtime from `<module dir>/../lua/`, so copy
// src/lua/*.lua to dist/lua/ next to the compiled stores.
import { cpSync } from 'node:fs';

cpSync(new URL('../src/lua', import.meta.url), new URL('../dist/lua', import.meta.url), { recursive: true });
