-- CreateTable
CREATE TABLE "named_sessions" (
    "id" UUID NOT NULL,
    "user_id" VARCHAR(128) NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "named_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox" (
    "seq" BIGSERIAL NOT NULL,
    "id" UUID NOT NULL,
    "type" VARCHAR(200) NOT NULL,
    "envelope" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE UNIQUE INDEX "named_sessions_user_id_title_key" ON "named_sessions"("user_id", "title");

-- CreateIndex
CREATE INDEX "named_sessions_user_id_created_at_id_idx" ON "named_sessions"("user_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "outbox_id_key" ON "outbox"("id");

-- Not expressible in the Prisma schema: at most one active session per user, enforced by the database.
CREATE UNIQUE INDEX "named_sessions_one_active_per_user" ON "named_sessions"("user_id") WHERE "active";

-- Not expressible in the Prisma schema: the relay scans only unsent rows.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("seq") WHERE "sent_at" IS NULL;
