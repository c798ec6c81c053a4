namespace SmpRobot.Controller.Gantry;

/// <summary>
/// A byte link to the gantry's firmware: serial port, TCP socket, or the in-process simulator.
/// Contract: <see cref="WriteAsync"/> is safe to call from several threads; the bytes of one call
/// are written contiguously (the client relies on this to put a real-time byte on the wire while a
/// line is being streamed). <see cref="ReadAsync"/> is called by one reader at a time and returns
/// 0 only when the link is closed. A link that fails throws <see cref="IOException"/>.
/// </summary>
public interface IGantryTransport : IAsyncDisposable
{
    /// <summary>Human description, e.g. "sim", "serial:/dev/ttyUSB0@115200".</summary>
    string Description { get; }

    /// <summary>Opens the link. Opening may reset the board (DTR); the client waits for the banner.</summary>
    Task OpenAsync(CancellationToken cancellationToken);

    /// <summary>Writes bytes to the firmware.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Reads what has arrived (at least one byte), or 0 when the link closed.</summary>
    ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken);
}
