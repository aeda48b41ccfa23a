/**
 * A factory of numbered resources (`{ id }`, from 1) that records which it destroyed, and whose
 * `validate` (when asked for) always passes.
 */
export function counterFactory(options: { validate?: boolean } = {}) {
  let nextId = 0;
  const destroyed: number[] = [];
  return {
    destroyed,
    factory: {
      create: async () => ({ id: ++nextId }),
      destroy: async (resource: { id: number }) => {
        destroyed.push(resource.id);
      },
      ...(options.validate ? { validate: async () => true } : {}),
    },
  };
}
