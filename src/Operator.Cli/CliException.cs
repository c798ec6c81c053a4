using System.Text.Json.Nodes;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// A failure the user must read: its message is printed as is (never a stack trace) and the process exits
/// with <see cref="ExitCode"/>. <see cref="Details"/> are extra fields of the <c>--json</c> error object.
/// </summary>
internal sealed class CliException : Exception
{
    public CliException(int exitCode, string message, JsonObject? details = null, Exception? inner = null)
        : base(message, inner)
    {
        ExitCode = exitCode;
        Details = details;
    }

    public CliException() : this(ExitCodes.Failure, "error") { }

    public CliException(string message) : this(ExitCodes.Failure, message) { }

    public CliException(string message, Exception inner) : this(ExitCodes.Failure, message, null, inner) { }

    public int ExitCode { get; }

    public JsonObject? Details { get; }

    /// <summary>Text already printed to stderr for the user (e.g. violation lines); the JSON object still carries the details.</summary>
    public bool AlreadyReported { get; init; }
}
