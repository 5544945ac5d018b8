"""Generic Chinese place, street and company naming for the synthesized reference data.

Nothing here belongs to one city: names are built from common North-China village syllables,
common urban street stems and auspicious company brand characters, each with its pinyin so
English names can be derived. City- and district-specific stems come from the city's files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

__all__ = [
    "BRAND_CHARS",
    "STREET_STEMS",
    "NameBook",
    "pinyin_join",
]


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``"东 dong, 西 xi"`` → ``(("东", "dong"), ("西", "xi"))``."""
    return tuple((zh, en) for zh, en in (item.split() for item in text.split(",")))


# Village prefixes: directions, sizes, plants, animals, numbers.
_PREFIX: Final = _pairs(
    "东 dong, 西 xi, 南 nan, 北 bei, 上 shang, 下 xia, 前 qian, 后 hou, 大 da, 小 xiao,"
    "中 zhong, 新 xin, 老 lao, 高 gao, 石 shi, 白 bai, 黄 huang, 红 hong, 青 qing, 柳 liu,"
    "桃 tao, 杏 xing, 枣 zao, 槐 huai, 榆 yu, 柏 bai, 松 song, 梨 li, 马 ma, 牛 niu,"
    "羊 yang, 龙 long, 凤 feng, 虎 hu, 鹿 lu, 金 jin, 银 yin, 铁 tie, 泉 quan, 水 shui,"
    "沙 sha, 安 an, 太 tai, 平 ping, 长 chang, 永 yong, 三 san, 五 wu, 双 shuang, 韩 han"
)
_SURNAME: Final = _pairs(
    "王 wang, 李 li, 张 zhang, 赵 zhao, 刘 liu, 陈 chen, 杨 yang, 郭 guo, 韩 han, 申 shen,"
    "常 chang, 崔 cui, 秦 qin, 魏 wei, 郝 hao, 苗 miao, 段 duan, 贾 jia, 冯 feng, 史 shi,"
    "孟 meng, 侯 hou, 焦 jiao, 霍 huo, 董 dong, 岳 yue, 宋 song, 牛 niu, 路 lu, 原 yuan,"
    "连 lian, 靳 jin, 暴 bao, 桑 sang, 栗 li"
)
_MIDDLE: Final = _pairs(
    "河 he, 山 shan, 石 shi, 水 shui, 沟 gou, 坡 po, 柳 liu, 桃 tao, 龙 long, 泉 quan,"
    "峪 yu, 岭 ling, 窑 yao, 井 jing, 树 shu, 槐 huai, 岔 cha, 王 wang, 马 ma, 庙 miao"
)
# Landform and settlement endings common in North-China village names.
_SUFFIX: Final = _pairs(
    "庄 zhuang, 沟 gou, 峪 yu, 河 he, 坡 po, 岭 ling, 头 tou, 湾 wan, 寨 zhai, 堡 bao,"
    "关 guan, 屯 tun, 营 ying, 坪 ping, 垴 nao, 掌 zhang, 峧 jiao, 凹 ao, 岩 yan, 泉 quan,"
    "庙 miao, 店 dian, 井 jing, 窑 yao, 池 chi, 洼 wa, 口 kou, 桥 qiao, 坊 fang, 城 cheng,"
    "园 yuan, 滩 tan, 岗 gang, 底 di, 垣 yuan"
)
#: Common urban street stems (not tied to a city).
STREET_STEMS: Final = _pairs(
    "英雄 yingxiong, 太行 taihang, 解放 jiefang, 建设 jianshe, 人民 renmin, 和平 heping,"
    "长兴 changxing, 延安 yan'an, 紫金 zijin, 府后 fuhou, 光明 guangming, 幸福 xingfu,"
    "文化 wenhua, 学府 xuefu, 体育 tiyu, 新华 xinhua, 友谊 youyi, 团结 tuanjie,"
    "胜利 shengli, 振兴 zhenxing, 朝阳 chaoyang, 东风 dongfeng, 红旗 hongqi, 兴业 xingye,"
    "清泉 qingquan, 花园 huayuan, 桃园 taoyuan, 杏林 xinglin, 槐荫 huaiyin, 柳林 liulin,"
    "梧桐 wutong, 银河 yinhe, 金河 jinhe, 府前 fuqian, 站前 zhanqian, 滨河 binhe,"
    "健康 jiankang, 安居 anju, 育才 yucai, 五一 wuyi, 八一 bayi, 七一 qiyi, 迎宾 yingbin,"
    "复兴 fuxing, 青年 qingnian, 工人 gongren, 创业 chuangye, 科技 keji, 物流 wuliu,"
    "瑞祥 ruixiang, 丰收 fengshou, 晨光 chenguang, 惠民 huimin, 博学 boxue, 明德 mingde,"
    "荣华 ronghua, 长安 chang'an, 永安 yong'an, 太平 taiping, 昌盛 changsheng, 金桥 jinqiao,"
    "玉带 yudai, 翠微 cuiwei, 南华 nanhua, 北华 beihua, 东华 donghua, 西华 xihua,"
    "城东 chengdong, 城西 chengxi, 城南 chengnan, 城北 chengbei, 新民 xinmin,"
    "新建 xinjian, 新兴 xinxing, 兴华 xinghua, 安康 ankang"
)
# Characters for generated two-character street stems once the common ones run out.
_NICE: Final = _pairs(
    "安 an, 宁 ning, 兴 xing, 华 hua, 和 he, 平 ping, 康 kang, 泰 tai, 福 fu, 瑞 rui,"
    "祥 xiang, 丰 feng, 盛 sheng, 昌 chang, 明 ming, 光 guang, 新 xin, 民 min, 德 de,"
    "仁 ren, 文 wen, 英 ying, 春 chun, 秋 qiu, 金 jin, 银 yin, 玉 yu, 翠 cui, 青 qing,"
    "紫 zi, 松 song, 柏 bai, 桃 tao, 杏 xing, 梨 li, 柳 liu, 槐 huai, 榆 yu, 竹 zhu,"
    "梅 mei, 兰 lan, 菊 ju, 莲 lian, 荷 he, 永 yong"
)
#: Company brand characters.
BRAND_CHARS: Final = (
    "兴盛宏达鑫源泰丰昌隆华瑞祥恒通安康润新联合信诚金天宇辰海"
    "嘉利永富强胜凯峰岳宝德佳荣旭阳光明远博誉"
)


def pinyin_join(parts: Iterable[str]) -> str:
    """Join pinyin syllables into one capitalised word (``["wang", "jia"]`` → ``"Wangjia"``)."""
    return "".join(parts).capitalize()


class NameBook:
    """Deterministic name generator that never repeats a name within its scope.

    Parameters
    ----------
    rng
        The generator to draw from.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._used: dict[str, set[str]] = {}
        self._brands: dict[str, list[str]] = {}

    def _pick(self, table: tuple[tuple[str, str], ...]) -> tuple[str, str]:
        return table[int(self.rng.integers(len(table)))]

    def _claim(self, scope: str, name: str) -> bool:
        used = self._used.setdefault(scope, set())
        if name in used:
            return False
        used.add(name)
        return True

    def reserve(self, scope: str, name: str) -> None:
        """Mark ``name`` as taken in ``scope``."""
        self._used.setdefault(scope, set()).add(name)

    def village_core(self, scope: str) -> tuple[str, str]:
        """A village name stem without 村, e.g. ``("王家庄", "Wangjiazhuang")``; unique in scope."""
        for attempt in range(200):
            r = self.rng.random()
            if r < 0.45:
                parts = [self._pick(_PREFIX), self._pick(_SUFFIX)]
            elif r < 0.7:
                parts = [self._pick(_SURNAME), ("家", "jia"), self._pick(_SUFFIX)]
            elif r < 0.9:
                parts = [self._pick(_PREFIX), self._pick(_MIDDLE), self._pick(_SUFFIX)]
            else:
                parts = [self._pick(_SURNAME), self._pick(_SUFFIX), self._pick(_SUFFIX)]
            zh = "".join(p[0] for p in parts)
            if zh[-1] == zh[-2] or (attempt < 150 and len(set(zh)) < len(zh)):
                continue
            if self._claim(scope, zh):
                return zh, pinyin_join(p[1] for p in parts)
        raise RuntimeError(f"village names exhausted in {scope}")

    def street_stems(
        self, scope: str, n: int, first: Iterable[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        """``n`` distinct two-character street stems: ``first`` ones, then common stems, then
        generated pairs."""
        out: list[tuple[str, str]] = []
        for zh, en in first:
            if len(out) < n and self._claim(scope, zh):
                out.append((zh, en))
        order = self.rng.permutation(len(STREET_STEMS))
        for i in order:
            if len(out) >= n:
                break
            zh, en = STREET_STEMS[int(i)]
            if self._claim(scope, zh):
                out.append((zh, en))
        while len(out) < n:
            a, b = self._pick(_NICE), self._pick(_NICE)
            if a[0] != b[0] and self._claim(scope, a[0] + b[0]):
                out.append((a[0] + b[0], a[1] + b[1]))
        return out

    def brand(self, scope: str) -> str:
        """A two-character company brand (e.g. ``"宏达"``), unique in scope; three characters
        once the pairs run out."""
        pool = self._brands.get(scope)
        if pool is None:
            n = len(BRAND_CHARS)
            pairs = [BRAND_CHARS[i] + BRAND_CHARS[j] for i in range(n) for j in range(n) if i != j]
            pool = [pairs[int(k)] for k in self.rng.permutation(len(pairs))]
            pool.reverse()
            self._brands[scope] = pool
        while pool:
            zh = pool.pop()
            if self._claim(scope, zh):
                return zh
        for _ in range(10_000):
            a, b, c = self.rng.integers(len(BRAND_CHARS), size=3)
            zh = BRAND_CHARS[a] + BRAND_CHARS[b] + BRAND_CHARS[c]
            if len(set(zh)) == 3 and self._claim(scope, zh):
                return zh
        raise RuntimeError(f"brand names exhausted in {scope}")
