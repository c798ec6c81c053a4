using System.Text.Json.Nodes;
using Grpc.Core;
using Spectre.Console;

namespace SmpRobot.Operator.Cli;

/// <summary>One command invocation: its output discipline (--json), the controller address and the host.</summary>
internal sealed class CommandContext
{
    private bool jsonWritten;

    public CommandContext(TextWriter stdout, TextWriter stderr, CliHost host, bool json, Uri controller)
    {
        Stdout = stdout;
        Stderr = stderr;
        Host = host;
        Json = json;
        Controller = controller;
    }

    public TextWriter Stdout { get; }

    public TextWriter Stderr { get; }

    public CliHost Host { get; }

    /// <summary>--json: exactly one JSON object on stdout at the end, every message on stderr.</summary>
    public bool Json { get; }

    public Uri Controller { get; }

    /// <summary>The live view is used only on a terminal, and never with --json or --no-ui.</summary>
    public bool CanUseLiveView(bool noUi) => !noUi && !Json && Host.StdoutIsTerminal;

    /// <summary>A message for the user; on stderr so stdout stays clean for results.</summary>
    public void Info(string message) => Stderr.WriteLine(message);

    /// <summary>A result: text on stdout, or (with --json) the JSON object <paramref name="json"/>.</summary>
    public void Result(string text, JsonObject json)
    {
        if (Json) WriteJson(json);
        else Stdout.WriteLine(text);
    }

    public void WriteJson(JsonObject json)
    {
        if (jsonWritten) throw new InvalidOperationException("a command wrote two JSON objects");
        jsonWritten = true;
        JsonOutput.Write(Stdout, json);
    }

    /// <summary>True once the command's JSON object is out (the error path must not add a second one).</summary>
    public bool JsonWritten => jsonWritten;

    /// <summary>Spectre console over stdout (tables, live view).</summary>
    public IAnsiConsole OutConsole() => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(Stdout),
        Ansi = Host.StdoutIsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
        ColorSystem = Host.StdoutIsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        Interactive = Host.StdoutIsTerminal ? InteractionSupport.Yes : InteractionSupport.No,
    });

    public ControllerConnection Connect() => Host.Connect(Controller, Access);

    /// <summary>The user's token and the CA to trust (--token-file, SMP_TOKEN; --ca, SMP_CA).</summary>
    public ControllerAccess Access { get; init; } = ControllerAccess.None;

    /// <summary>
    /// The user-facing text of a failed call. Unreachable controller → "cannot reach the controller at URL: is
    /// smp-controller running?"; otherwise the controller's own message.
    /// </summary>
    public static string DescribeRpcError(RpcException e, Uri controller) => e.StatusCode switch
    {
        _ when (e.Status.Detail + e.Status.DebugException?.ToString()).Contains("SSL connection could not be established", StringComparison.Ordinal) =>
            $"the controller at {Display(controller)} did not prove it is the chair you trust (TLS: {e.Status.DebugException?.GetBaseException().Message ?? e.Status.Detail}): give its certificate or its CA with --ca FILE or SMP_CA",
        StatusCode.Unavailable when IsStoreUnavailable(e) =>
            $"the controller at {Display(controller)} answers, but its {e.Status.Detail}",
        StatusCode.Unavailable when IsConnectFailure(e) =>
            $"cannot reach the controller at {Display(controller)}: is smp-controller running? ({e.Status.Detail})",
        StatusCode.Unavailable => $"the controller at {Display(controller)} is unavailable: {e.Status.Detail}",
        StatusCode.DeadlineExceeded => $"the controller at {Display(controller)} did not answer in time ({e.Status.Detail})",
        StatusCode.Unimplemented => $"the controller at {Display(controller)} does not implement this call: {e.Status.Detail}",
        StatusCode.Cancelled => "cancelled",
        _ => string.IsNullOrWhiteSpace(e.Status.Detail) ? e.StatusCode.ToString() : e.Status.Detail,
    };

    /// <summary>The URL as the user wrote it (no trailing slash).</summary>
    public static string Display(Uri controller) => controller.ToString().TrimEnd('/');

    /// <summary>How the controller begins the message of a call refused because its record store cannot be reached.</summary>
    public const string StoreUnreachablePrefix = "record store unreachable: ";

    /// <summary>
    /// True when the controller answered UNAVAILABLE because its record store cannot be reached (a PostgreSQL server
    /// restarting, …): the controller itself is there and supervises the machine; only what it reads from the store is unknown.
    /// </summary>
    public static bool IsStoreUnavailable(RpcException e) =>
        e.StatusCode == StatusCode.Unavailable && e.Status.Detail.StartsWith(StoreUnreachablePrefix, StringComparison.Ordinal);

    /// <summary>True when the call never reached the controller (nothing listens, refused connection).</summary>
    public static bool IsConnectFailure(RpcException e) => e.StatusCode == StatusCode.Unavailable && (
        e.Status.DebugException is HttpRequestException or System.Net.Sockets.SocketException
        || e.Status.Detail.Contains("Error connecting", StringComparison.OrdinalIgnoreCase)
        || e.Status.Detail.Contains("Error starting gRPC call", StringComparison.OrdinalIgnoreCase));
}
