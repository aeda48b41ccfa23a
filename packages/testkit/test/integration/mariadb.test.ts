import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { withMysqlDatabase } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('MariaDB smoke', () => {
  it('runs CRUD in a database of its own, then drops it', async () => {
    const url = await requireService('mysql', 'MariaDB');
    const database = await withMysqlDatabase(url);
    const connection = await mysql.createConnection(database.url);
    let version = '';
    try {
      const [versionRows] = await connection.query<mysql.RowDataPacket[]>('SELECT VERSION() AS version');
      version = String(versionRows[0]!.version);
      expect(version).toMatch(/MariaDB/);
      await connection.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))');
      await connection.execute('INSERT INTO items VALUES (?, ?), (?, ?)', [1, 'one', 2, 'two']);
      await connection.execute('UPDATE items SET name = ? WHERE id = ?', ['uno', 1]);
      await connection.execute('DELETE FROM items WHERE id = ?', [2]);
      const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT id, name FROM items ORDER BY id');
      expect(rows.map((row) => ({ ...row }))).toEqual([{ id: 1, name: 'uno' }]);
    } finally {
      await connection.end();
      await database.drop();
    }
    const admin = await mysql.createConnection(url);
    try {
      const [left] = await admin.query<mysql.RowDataPacket[]>(
        'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
        [database.database],
      );
      expect(left).toHaveLength(0);
    } finally {
      await admin.end();
    }
    smokeLine('mariadb', version, url);
  });
});
