/**
 * Memoizes the dynamic import of an optional peer dependency (loaded on first use, once),
 * unwrapping the CommonJS `default` export when there is one.
 */
export function lazyPeer<M>(load: () => Promise<unknown>): () => Promise<M> {
  let loaded: Promise<M> | undefined;
  return () => {
    loaded ??= load().then((module) => ((module as { default?: M }).default ?? module) as M);
    return loaded;
  };
}
