// A stand-in for @fastify/rate-limit's declarations (11.x, types/index.d.ts), which is not
// installed here: only what clashes with a second rate-limit plugin's, written to the same shapes.
// Its module augmentation adds `createRateLimit()` and a generic `rateLimit()` method to
// FastifyInstance (declared with FastifyInstance's own type parameters) and
// `rateLimit?: RateLimitOptions | false` to FastifyContextConfig; the package is CommonJS
// (`export =`). fastify-beside-types.test.ts maps the name `@fastify/rate-limit` here.
import type {
  ContextConfigDefault,
  FastifyPluginCallback,
  FastifyRequest,
  FastifySchema,
  preHandlerAsyncHookHandler,
  RouteGenericInterface,
} from 'fastify';

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    createRateLimit(
      options?: fastifyRateLimit.CreateRateLimitOptions,
    ): (request: FastifyRequest) => Promise<{ isAllowed: boolean; key: string }>;
    rateLimit<
      RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
      ContextConfig = ContextConfigDefault,
      SchemaCompiler extends FastifySchema = FastifySchema,
    >(
      options?: fastifyRateLimit.RateLimitOptions,
    ): preHandlerAsyncHookHandler<
      RawServer,
      RawRequest,
      RawReply,
      RouteGeneric,
      ContextConfig,
      SchemaCompiler,
      TypeProvider,
      Logger
    >;
  }
  interface FastifyContextConfig {
    rateLimit?: fastifyRateLimit.RateLimitOptions | false;
  }
}

type FastifyRateLimit = FastifyPluginCallback<fastifyRateLimit.RateLimitPluginOptions>;

declare namespace fastifyRateLimit {
  export interface CreateRateLimitOptions {
    max?: number | ((request: FastifyRequest, key: string) => number | Promise<number>);
    timeWindow?: number | string;
    keyGenerator?: (request: FastifyRequest) => string | number | Promise<string | number>;
  }
  export interface RateLimitOptions extends CreateRateLimitOptions {
    hook?: 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler';
  }
  export interface RateLimitPluginOptions extends RateLimitOptions {
    global?: boolean;
  }
  export const fastifyRateLimit: FastifyRateLimit;
  export { fastifyRateLimit as default };
}

declare function fastifyRateLimit(...params: Parameters<FastifyRateLimit>): ReturnType<FastifyRateLimit>;
export = fastifyRateLimit;
