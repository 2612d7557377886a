-- CreateTable
CREATE TABLE "chat_sessions" (
    "id" UUID NOT NULL,
    "user_id" VARCHAR(128),
    "user_type" VARCHAR(16) NOT NULL,
    "status" VARCHAR(16) NOT NULL DEFAULT 'active',
    "context" JSONB NOT NULL DEFAULT '{}',
    "satisfaction_rating" SMALLINT,
    "last_seq" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "closed_at" TIMESTAMPTZ(3),
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "chat_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "chat_messages" (
    "id" BIGSERIAL NOT NULL,
    "chat_session_id" UUID NOT NULL,
    "seq" INTEGER NOT NULL,
    "sender" VARCHAR(16) NOT NULL,
    "content" TEXT NOT NULL,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "processing_ms" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "chat_messages_pkey" PRIMARY KEY ("id")
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
CREATE INDEX "chat_sessions_user_id_created_at_id_idx" ON "chat_sessions"("user_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "chat_sessions_status_expires_at_idx" ON "chat_sessions"("status", "expires_at");

-- CreateIndex
CREATE INDEX "chat_sessions_status_closed_at_idx" ON "chat_sessions"("status", "closed_at");

-- CreateIndex
CREATE UNIQUE INDEX "chat_messages_chat_session_id_seq_key" ON "chat_messages"("chat_session_id", "seq");

-- CreateIndex
CREATE INDEX "chat_messages_chat_session_id_id_idx" ON "chat_messages"("chat_session_id", "id");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_id_key" ON "outbox"("id");

-- AddForeignKey
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_chat_session_id_fkey" FOREIGN KEY ("chat_session_id") REFERENCES "chat_sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Not expressible in the Prisma schema: the allowed values of the string columns.
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_user_type_check" CHECK ("user_type" IN ('client', 'provider', 'anonymous'));
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_status_check" CHECK ("status" IN ('active', 'closed'));
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_rating_check" CHECK ("satisfaction_rating" BETWEEN 1 AND 5);
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_sender_check" CHECK ("sender" IN ('user', 'assistant', 'system'));

-- Not expressible in the Prisma schema: the relay scans only unsent rows.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("seq") WHERE "sent_at" IS NULL;
