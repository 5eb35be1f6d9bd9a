-- The shared signing-key store of the auth module (`task-api keys rotate|list`). A key is in the
-- JWKS from created_at until retire_at (null: no end yet), and signs from sign_from until a newer
-- key's sign_from. Every auth instance reads this table at start and every JWT_KEY_RELOAD_SECONDS.
-- Empty (as on every existing database): the process uses JWT_PRIVATE_KEY, or the key generated
-- under DATA_DIR, as before; the first `keys rotate` seeds that key here.
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
  private_key text,
  public_key text NOT NULL,
  created_at timestamptz(3) NOT NULL DEFAULT now(),
  sign_from timestamptz(3) NOT NULL,
  retire_at timestamptz(3)
);
