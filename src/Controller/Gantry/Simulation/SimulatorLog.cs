using Microsoft.Extensions.Logging;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>The simulated board's log lines, in one place (source-generated, so a disabled level costs nothing).</summary>
internal static partial class SimulatorLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "{Link}: writing to the host failed: {Message}")]
    public static partial void WriteToHostFailed(this ILogger logger, string link, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Link}: the board refused input: {Message}")]
    public static partial void BoardRefusedInput(this ILogger logger, string link, string message);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Who} opened the link: board reset")]
    public static partial void OpenedLink(this ILogger logger, string who);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fault injection on: {Faults}")]
    public static partial void FaultInjectionOn(this ILogger logger, string faults);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping the simulated gantry")]
    public static partial void Stopping(this ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Wrote the simulation record to {Path}")]
    public static partial void WroteRecord(this ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Error, Message = "pty {Device}: poll failed: {Message}")]
    public static partial void PtyPollFailed(this ILogger logger, string device, string message);

    [LoggerMessage(Level = LogLevel.Error, Message = "pty {Device}: its reader stopped: {Message}; the board hears nothing more from this link")]
    public static partial void PtyReaderFailed(this ILogger logger, string device, string message);

    [LoggerMessage(Level = LogLevel.Error, Message = "pty {Device}: its reader did not stop within 10 s; its descriptors are left open rather than closed under it")]
    public static partial void PtyReaderStuck(this ILogger logger, string device);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not remove {Link}: {Message}")]
    public static partial void LinkNotRemoved(this ILogger logger, string link, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "tcp {Port}: refused a second client: one at a time")]
    public static partial void TcpSecondClientRefused(this ILogger logger, int port);

    [LoggerMessage(Level = LogLevel.Information, Message = "tcp {Port}: client disconnected")]
    public static partial void TcpClientDisconnected(this ILogger logger, int port);
}
