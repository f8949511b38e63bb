using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace IlgpuOct.Fuzz;

/// <summary>
/// Structure-aware safetensors mutations: the JSON header is parsed, one field is changed (a
/// metadata value, a dtype, a shape, the data offsets, a whole entry), and the file is rebuilt with
/// a consistent header length, so the mutation reaches the reader's field checks; sometimes the
/// header length itself or the raw bytes are damaged instead.
/// </summary>
public static class SafeTensorsMutator
{
    public static byte[] Mutate(byte[] file, Random random)
    {
        if (random.Next(5) == 0)
        {
            return ByteMutations.Mutate(file, random);
        }
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(file.AsSpan(8, (int)headerLength))!.AsObject();
        byte[] data = file[(8 + (int)headerLength)..];
        int rounds = 1 + random.Next(2);
        for (int r = 0; r < rounds; r++)
        {
            MutateHeader(header, random, data.Length);
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        ulong length = (ulong)json.Length;
        if (random.Next(10) == 0)
        {
            length = (ulong)ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)];
        }
        if (random.Next(8) == 0)
        {
            data = data[..random.Next(data.Length + 1)];
        }
        var output = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(output, length);
        json.CopyTo(output, 8);
        data.CopyTo(output, 8 + json.Length);
        return output;
    }

    private static void MutateHeader(JsonObject header, Random random, int dataLength)
    {
        var tensors = header.Where(p => p.Key != "__metadata__" && p.Value is JsonObject).Select(p => p.Key).ToList();
        var metadata = header["__metadata__"] as JsonObject;
        switch (random.Next(10))
        {
            case 0 or 1 when metadata is { Count: > 0 }:
            {
                string key = metadata.Select(p => p.Key).ElementAt(random.Next(metadata.Count));
                metadata[key] = random.Next(6) switch
                {
                    0 => null,
                    1 => JsonValue.Create(ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)]),
                    2 => new JsonObject(),
                    _ => JsonValue.Create(random.Next(2) == 0
                        ? ByteMutations.InterestingText[random.Next(ByteMutations.InterestingText.Length)]
                        : ByteMutations.Text(ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)])),
                };
                if (random.Next(4) == 0)
                {
                    metadata.Remove(key);
                }
                return;
            }
            case 2 when tensors.Count > 0:
                header.Remove(tensors[random.Next(tensors.Count)]);
                return;
            case 3 when tensors.Count > 0:
            {
                var entry = header[tensors[random.Next(tensors.Count)]]!.AsObject();
                string[] fields = ["dtype", "shape", "data_offsets"];
                entry.Remove(fields[random.Next(fields.Length)]);
                return;
            }
            case 4 when tensors.Count > 0:
            {
                var entry = header[tensors[random.Next(tensors.Count)]]!.AsObject();
                string[] types = ["F32", "F64", "I64", "I32", "U8", "F16", "BOOL", "", "f32"];
                entry["dtype"] = random.Next(5) == 0 ? JsonValue.Create(7) : JsonValue.Create(types[random.Next(types.Length)]);
                return;
            }
            case 5 or 6 when tensors.Count > 0:
            {
                var entry = header[tensors[random.Next(tensors.Count)]]!.AsObject();
                var shape = entry["shape"] as JsonArray ?? [];
                var dims = shape.Select(n => n?.DeepClone()).ToList();
                switch (random.Next(5))
                {
                    case 0:
                        dims.Clear();
                        break;
                    case 1:
                        dims.Add(JsonValue.Create(random.Next(1, 5)));
                        break;
                    case 2 when dims.Count > 0:
                        dims.RemoveAt(random.Next(dims.Count));
                        break;
                    case 3 when dims.Count > 0:
                        dims[random.Next(dims.Count)] = JsonValue.Create(ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)]);
                        break;
                    default:
                        dims.Add(random.Next(2) == 0 ? JsonValue.Create("3") : JsonValue.Create(1.5));
                        break;
                }
                entry["shape"] = new JsonArray([.. dims]);
                return;
            }
            case 7 or 8 when tensors.Count > 0:
            {
                var entry = header[tensors[random.Next(tensors.Count)]]!.AsObject();
                long Pick() => random.Next(3) == 0 ? random.Next(dataLength + 1) : ByteMutations.Interesting[random.Next(ByteMutations.Interesting.Length)];
                entry["data_offsets"] = random.Next(6) == 0 ? new JsonArray(JsonValue.Create(Pick())) : new JsonArray(JsonValue.Create(Pick()), JsonValue.Create(Pick()));
                return;
            }
            default:
                if (random.Next(2) == 0)
                {
                    header["__metadata__"] = random.Next(2) == 0 ? JsonValue.Create("x") : new JsonArray();
                }
                else
                {
                    header[$"extra{random.Next(3)}"] = random.Next(2) == 0 ? JsonValue.Create(1) : new JsonObject { ["dtype"] = "F32" };
                }
                return;
        }
    }
}
