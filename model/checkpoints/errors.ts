/**
 * A checkpoint file this project cannot read: the wrong format, a version or type it does not know, data that
 * ends early or runs past the file, or an architecture it has no model for. `file` is the path as given and
 * `reason` says what is wrong; the message names both, so a user can tell which file to look at and why.
 */
export class CheckpointFormatError extends Error {
  override readonly name = 'CheckpointFormatError';

  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}
