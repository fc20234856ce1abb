"""Hand-made CJK (output, reference) pairs shared by the metric tests."""

# six en→zh outputs against their references (near misses, reordering, a synonym, an empty one)
ZH6 = [
    ("我爱北京天安门。", "我爱北京天安门。"),
    ("今天天气很好", "今天天气非常好。"),
    ("他在看书", "他正在图书馆看书。"),
    ("我们明天去海边。", "明天我们去海边。"),
    ("这只猫很可爱。", "这只小猫非常可爱。"),
    ("", "谢谢你的帮助。"),
]
