using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Checks the request message of every unary and server-streaming call of the controller's own
/// services before gRPC sees it: bytes that are not the request message are answered
/// INVALID_ARGUMENT naming the message. grpc-dotnet deserializes before any interceptor runs, so a
/// parse failure would otherwise be UNKNOWN "Exception was thrown by handler" with a stack trace in
/// the log. (Streamed requests — the heartbeat — are parsed inside the handler, where
/// <see cref="ErrorInterceptor"/> maps the same failure.)
/// </summary>
/// <remarks>
/// The e-stop is never refused for the form of its request: an unreadable EmergencyStop body is
/// replaced by an empty request and the handler is told (<see cref="UnreadableEmergencyStopKey"/>),
/// so the machine still stops and the reason says the request could not be read. Compressed
/// messages are left to gRPC (the project's clients do not compress). Each body is parsed twice
/// (here and by gRPC): microseconds for every message but a plan, a few milliseconds per MB for those.
/// </remarks>
internal static class RequestValidation
{
    /// <summary>HttpContext item set when an EmergencyStop's body could not be read: the parser's message.</summary>
    public const string UnreadableEmergencyStopKey = "smp.estop.unreadable";

    private static readonly Dictionary<string, (MessageDescriptor Input, bool IsEmergencyStop)> Methods = BuildMethods();

    private static Dictionary<string, (MessageDescriptor, bool)> BuildMethods()
    {
        var files = new[] { SafetyReflection.Descriptor, SessionReflection.Descriptor, MachineReflection.Descriptor, CameraReflection.Descriptor, CalibrationReflection.Descriptor, SurfaceReflection.Descriptor, AccessReflection.Descriptor, TreatmentsReflection.Descriptor };
        // Routing matches paths without regard to case: so does this, or a path in other case would skip the checks.
        var methods = new Dictionary<string, (MessageDescriptor, bool)>(StringComparer.OrdinalIgnoreCase);
        foreach (var service in files.SelectMany(f => f.Services))
        {
            foreach (var method in service.Methods.Where(m => !m.IsClientStreaming))
            {
                var path = "/" + service.FullName + "/" + method.Name;
                methods[path] = (method.InputType, string.Equals(path, SafetyGrpcService.EmergencyStopPath, StringComparison.OrdinalIgnoreCase));
            }
        }
        return methods;
    }

    /// <summary>The middleware: validates, then calls <paramref name="next"/> (unless it answered the call itself).</summary>
    public static async Task InvokeAsync(HttpContext context, Func<Task> next, long maxMessageBytes)
    {
        if (!Methods.TryGetValue(GrpcPipeline.MethodPath(context), out var method)
            || context.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) != true)
        {
            await next();
            return;
        }
        var body = await ReadBodyAsync(context.Request.Body, maxMessageBytes + 5, context.RequestAborted);
        var problem = body is null ? $"the request is larger than {maxMessageBytes} bytes" : Check(body, method.Input, checkLengths: !method.IsEmergencyStop);
        if (problem is not null && method.IsEmergencyStop)
        {
            context.Items[UnreadableEmergencyStopKey] = problem;
            body = [0, 0, 0, 0, 0]; // one empty message: an EmergencyStopRequest with no fields
            problem = null;
        }
        if (problem is not null)
        {
            GrpcPipeline.Refuse(context, Grpc.Core.StatusCode.InvalidArgument, problem);
            return;
        }
        context.Request.Body = new MemoryStream(body!, writable: false);
        await next();
    }

    /// <summary>Null when every framed message parses as <paramref name="input"/>; else why not.</summary>
    private static string? Check(byte[] body, MessageDescriptor input, bool checkLengths)
    {
        var at = 0;
        while (at < body.Length)
        {
            if (body.Length - at < 5) return $"the request is not a valid {input.Name} message: a gRPC frame is cut short";
            var compressed = body[at] != 0;
            var length = BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(at + 1, 4));
            if (length > body.Length - at - 5) return $"the request is not a valid {input.Name} message: a gRPC frame is cut short";
            if (!compressed)
            {
                IMessage message;
                try
                {
                    message = input.Parser.ParseFrom(body.AsSpan(at + 5, (int)length));
                }
                catch (InvalidProtocolBufferException e)
                {
                    return $"the request is not a valid {input.Name} message: {e.Message}";
                }
                // The e-stop is never refused for its form: its handler cuts its strings instead.
                if (checkLengths && TooLong(message, "") is { } tooLong) return tooLong;
            }
            at += 5 + (int)length;
        }
        return null;
    }

    /// <summary>
    /// The first string field of <paramref name="message"/> (at any depth) longer than it may be, said by its path and
    /// the limit (never quoting it); null when all fit. A document (a field named *_json: plans, profiles, boards) is
    /// bounded by the request's size; ids and names as <see cref="LimitOf"/> says; every other string by
    /// <see cref="Bounded.MaxReasonLength"/>.
    /// </summary>
    internal static string? TooLong(IMessage message, string prefix)
    {
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            var path = prefix + field.Name;
            if (field.FieldType == FieldType.String && !field.Name.EndsWith("_json", StringComparison.Ordinal))
            {
                var strings = field.IsRepeated ? ((System.Collections.IEnumerable)value).Cast<string>() : [(string)value];
                var max = LimitOf(field.Name);
                if (strings.FirstOrDefault(v => v.Length > max) is { } tooLong)
                {
                    return $"{path} is {tooLong.Length} characters long; at most {max} are accepted";
                }
            }
            else if (field.FieldType == FieldType.Message && !field.IsMap)
            {
                var children = field.IsRepeated ? ((System.Collections.IEnumerable)value).Cast<IMessage>() : value is IMessage one ? [one] : [];
                foreach (var child in children)
                {
                    if (TooLong(child, path + ".") is { } problem) return problem;
                }
            }
        }
        return null;
    }

    /// <summary>Ids (*id, *_ids) <see cref="Bounded.MaxIdLength"/>; names <see cref="Bounded.MaxNameLength"/>; everything else <see cref="Bounded.MaxReasonLength"/>.</summary>
    private static int LimitOf(string field) =>
        field == "id" || field.EndsWith("_id", StringComparison.Ordinal) || field.EndsWith("_ids", StringComparison.Ordinal) ? Bounded.MaxIdLength
        : field is "name" or "operator" or "source" or "role" or "camera" ? Bounded.MaxNameLength
        : Bounded.MaxReasonLength;

    private static async Task<byte[]?> ReadBodyAsync(Stream body, long limit, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > limit) return null;
            await buffer.WriteAsync(chunk.AsMemory(0, read), ct);
        }
        return buffer.ToArray();
    }
}
