-- CreateTable
CREATE TABLE "event_receipts" (
    "source" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "event_receipts_pkey" PRIMARY KEY ("source","id")
);

-- CreateIndex
CREATE INDEX "event_receipts_received_at_idx" ON "event_receipts"("received_at");
