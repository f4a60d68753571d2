import { defineConfig } from 'drizzle-kit';

// `generate` only: migrations are committed and applied at start-up by migrateDatabase (never `push`).
export default defineConfig({
  dialect: 'postgresql',
  schema: './schemas/db/index.ts',
  out: './schemas/migrations',
  casing: 'snake_case',
  migrations: { schema: 'drizzle', table: '__drizzle_migrations' },
});
