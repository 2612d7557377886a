-- CloudEvents ids are any non-empty string (other producers' are not UUIDs) and unique only within
-- their source: processed events are remembered by (source, id).
ALTER TABLE "processed_events" DROP CONSTRAINT "processed_events_pkey";
ALTER TABLE "processed_events" ALTER COLUMN "id" SET DATA TYPE TEXT;
-- Rows recorded so far all came from the chat service's chat.events.message.created.
ALTER TABLE "processed_events" ADD COLUMN "source" TEXT NOT NULL DEFAULT '/chat';
ALTER TABLE "processed_events" ALTER COLUMN "source" DROP DEFAULT;
ALTER TABLE "processed_events" ADD CONSTRAINT "processed_events_pkey" PRIMARY KEY ("source", "id");
