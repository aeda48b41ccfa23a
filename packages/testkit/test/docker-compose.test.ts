/**
 * docker-compose.yml serves users with a Docker engine (scripts/services uses it then), and no
 * engine runs where CI does. These checks keep it in step with what CI does run: the local
 * processes scripts/services starts and the URLs the tests read. A port, a credential, a
 * Postgres setting or a pinned version changed on one side only fails here.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { serviceDefaults } from '../src/index.js';

const root = path.resolve(import.meta.dirname, '../../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

interface ComposeService {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
}
const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};
const servicesScript = read('scripts/services');

/** scripts/services' `default_url` case: service → the URL its tests get by default. */
function scriptDefaultUrls(): Map<string, string> {
  const body = /default_url\(\) \{\n {2}case "\$1" in\n([\s\S]*?)\n {2}esac/.exec(servicesScript)?.[1];
  if (body === undefined) throw new Error('scripts/services: no default_url case');
  return new Map([...body.matchAll(/^\s+(\w+)\) echo (\S+) ;;$/gm)].map((match) => [match[1]!, match[2]!]));
}

/** The port of a default URL (`127.0.0.1:9092` for Kafka's broker list). */
function portOf(url: string): number {
  const parsed = URL.canParse(url) && !/^[\d.]+:\d+$/.test(url) ? new URL(url) : new URL(`tcp://${url}`);
  return Number(parsed.port);
}

describe('docker-compose.yml', () => {
  const urls = scriptDefaultUrls();
  const all = /^ALL_SERVICES=\(([^)]*)\)$/m.exec(servicesScript)?.[1]?.split(' ') ?? [];

  it('has every service scripts/services knows, with a health check for `up --wait`', () => {
    expect(all.length).toBeGreaterThan(5);
    expect(Object.keys(compose.services).sort()).toEqual([...all].sort());
    for (const name of all) expect(compose.services[name]?.healthcheck?.test, name).toBeDefined();
  });

  it('publishes each default URL port on loopback only', () => {
    for (const name of all) {
      const url = urls.get(name);
      expect(url, `default_url ${name}`).toBeDefined();
      const port = portOf(url!);
      const ports = compose.services[name]!.ports ?? [];
      expect(ports, name).toContain(`127.0.0.1:${port}:${port}`);
      for (const published of ports) expect(published, name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('agrees with the test kit defaults', () => {
    // The test kit and scripts/services are two spellings of the same defaults.
    const kit: Record<string, string> = {
      redis: serviceDefaults.redis.url,
      postgres: serviceDefaults.postgres.url,
      mariadb: serviceDefaults.mysql.url,
      rabbitmq: serviceDefaults.rabbitmq.url,
      etcd: serviceDefaults.etcd.url,
      nats: serviceDefaults.nats.url,
      kafka: serviceDefaults.kafka.url,
      moto: serviceDefaults.s3.url,
      mongo: serviceDefaults.mongo.url,
      consul: serviceDefaults.consul.url,
    };
    for (const [name, url] of Object.entries(kit)) expect(urls.get(name), name).toBe(url);
  });

  it('creates the users and databases the default URLs log in with', () => {
    const postgres = new URL(urls.get('postgres')!);
    expect(compose.services.postgres!.environment).toMatchObject({
      POSTGRES_USER: postgres.username,
      POSTGRES_PASSWORD: postgres.password,
      POSTGRES_DB: postgres.pathname.slice(1),
    });
    const mariadb = new URL(urls.get('mariadb')!);
    expect(compose.services.mariadb!.environment).toMatchObject({
      MARIADB_USER: mariadb.username,
      MARIADB_PASSWORD: mariadb.password,
      MARIADB_DATABASE: mariadb.pathname.slice(1),
    });
    // RabbitMQ's image creates guest/guest, which the default URL uses.
    expect(new URL(urls.get('rabbitmq')!).username).toBe('guest');
  });

  it("starts Postgres with the local cluster's settings and extensions", () => {
    const local = /cat >"\$data\/noa\.conf" <<'EOF'\n([\s\S]*?)\nEOF/.exec(servicesScript)?.[1];
    expect(local).toBeDefined();
    const localSettings = new Map(
      [...local!.matchAll(/^([\w.]+) = (.+)$/gm)].map((match) => [
        match[1]!,
        match[2]!.replace(/^'|'$/g, ''),
      ]),
    );
    const command = compose.services.postgres!.command!;
    const settings = new Map(
      command
        .filter((_, index) => command[index - 1] === '-c')
        .map((setting) => setting.split('=') as [string, string]),
    );
    // Docker needs its own listen address and sockets; the rest must match.
    for (const name of [
      'shared_preload_libraries',
      'pg_stat_statements.track',
      'wal_level',
      'max_wal_senders',
      'max_replication_slots',
      'max_connections',
    ]) {
      expect(settings.get(name), name).toBe(localSettings.get(name));
    }
    // The image builds from a Dockerfile that installs the extensions the local cluster gets.
    const build = compose.services.postgres!.build!;
    const dockerfile = read(path.join(build, 'Dockerfile'));
    const init = read(path.join(build, 'init.sh'));
    const localExtensions = [...servicesScript.matchAll(/CREATE EXTENSION IF NOT EXISTS (\w+);/g)].map(
      (m) => m[1],
    );
    expect(localExtensions.length).toBeGreaterThan(0);
    for (const extension of localExtensions)
      expect(init, extension).toContain(`CREATE EXTENSION IF NOT EXISTS ${extension};`);
    expect(dockerfile).toContain('postgresql-15-hypopg');
    expect(dockerfile).toContain('postgresql-15-pg-qualstats');
  });

  it('pins the same Kafka and moto versions as the local services', () => {
    const kafka = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(
      read('scripts/services.d/kafka/pom.xml'),
    )?.[1];
    expect(compose.services.kafka!.image).toBe(`apache/kafka:${kafka}`);
    const moto = /^moto==(\S+)$/m.exec(read('scripts/services.d/moto/requirements.txt'))?.[1];
    expect(compose.services.moto!.image).toBe(`motoserver/moto:${moto}`);
  });

  it('mounts only files that exist and volumes it declares', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.'))
          expect(existsSync(path.join(root, source)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${source}`).toHaveProperty(source);
      }
    }
  });
});
