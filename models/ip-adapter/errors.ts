/** Named errors of the IP-Adapter family. Each message says what was expected. */
export class IpAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** The config is incomplete or inconsistent (a required width missing, a head size that does not divide the width). */
export class IpAdapterConfigError extends IpAdapterError {}
/** An input tensor of the wrong shape: a face embedding of another width, hidden states of another width, a mask
 * whose size does not divide the layer grid. */
export class IpAdapterInputError extends IpAdapterError {}
/** A checkpoint that does not fit: keys missing or unmatched (all listed), or shapes of another UNet or adapter width. */
export class IpAdapterCheckpointError extends IpAdapterError {
  constructor(readonly file: string, readonly problems: readonly string[]) {
    super(`IP-Adapter checkpoint ${file}: ${problems.join('; ')}`);
  }
}
