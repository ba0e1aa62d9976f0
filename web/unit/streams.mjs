// Response bodies for the stream tests.

/** A body that delivers `chunks` (strings or bytes), then ends — or fails with `error`. */
export function body(chunks, error) {
  const encoder = new TextEncoder();
  const queue = [...chunks];
  // One chunk per read, so an error comes after the chunks were read (erroring a stream drops
  // what is still queued in it).
  return new ReadableStream({
    pull(controller) {
      const c = queue.shift();
      if (c !== undefined) controller.enqueue(typeof c === "string" ? encoder.encode(c) : c);
      else if (error) controller.error(error);
      else controller.close();
    },
  });
}
